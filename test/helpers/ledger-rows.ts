import fc from 'fast-check';
import type { LedgerRow } from '../../src/modules/metering/ledger/row.ts';

/** Text PostgreSQL can hold (no NUL), with the characters COPY's text format escapes made likely. */
export const anyText = fc
  .string({
    unit: fc.oneof(
      fc.constantFrom('\\', '\t', '\n', '\r', '"', 'N', '{', ','),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }),
    ),
  })
  .map((s) => s.replaceAll('\u0000', ''));
const amount = fc.oneof(
  fc.nat(1_000_000),
  fc.double({ min: 0, max: 1e9, noNaN: true, noDefaultInfinity: true }),
);
const instant = fc.date({
  min: new Date('2000-01-01T00:00:00Z'),
  max: new Date('2100-01-01T00:00:00Z'),
  noInvalidDate: true,
});

/** Any ledger row of `environment`, with every character COPY's text format escapes made likely. */
export const ledgerRow = (environment: string) =>
  fc
    .record({
      customerId: anyText.filter((s) => s.length > 0),
      feature: fc.constantFrom('calls', 'storage', 'seats'),
      idempotencyKey: anyText.filter((s) => s.length > 0),
      value: amount,
      counted: amount,
      member: fc.option(anyText, { nil: null }),
      occurredAt: instant,
      periodStart: instant,
      periodEnd: fc.option(instant, { nil: null }),
      overage: amount,
      creditDraws: fc.dictionary(fc.constantFrom('gr_1', 'gr_2', 'gr_"3'), fc.integer({ min: 1, max: 500 })),
      answer: fc.record({
        accepted: fc.boolean(),
        used: amount,
        limit: fc.option(amount, { nil: null }),
        remaining: fc.option(amount, { nil: null }),
        resets_at: fc.option(
          instant.map((d) => d.toISOString()),
          { nil: null },
        ),
        period_start: instant.map((d) => d.toISOString()),
        overage: amount,
        credit_used: amount,
      }),
      reservationId: fc.option(anyText, { nil: null }),
    })
    .map((r): LedgerRow => ({ ...r, environment, crossings: [] }));
