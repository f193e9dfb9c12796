import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { answerJson } from '../../src/modules/metering/answer.ts';
import { LedgerLines, ledgerHead, lineOfRow, rowOfLine } from '../../src/modules/metering/ledger/lines.ts';
import type { LedgerRow } from '../../src/modules/metering/ledger/row.ts';
import { addRecord } from '../../src/modules/metering/redis/stream-records.ts';
import { answerText, decodeAnswer, encodeAnswer } from '../../src/modules/metering/redis/wire.ts';
import type { UsageEvent } from '../../src/modules/metering/store.ts';
import { ledgerRow } from '../helpers/ledger-rows.ts';

const amount = fc.oneof(
  fc.nat(1_000_000),
  fc.double({ min: 0, max: 1e9, noNaN: true, noDefaultInfinity: true }),
);
const instant = fc.date({ min: new Date('2000-01-01Z'), max: new Date('2100-01-01Z'), noInvalidDate: true });

const answer = fc.record({
  accepted: fc.boolean(),
  used: amount,
  limit: fc.option(amount, { nil: null }),
  remaining: fc.option(amount, { nil: null }),
  resetsAt: fc.option(instant, { nil: null }),
  periodStart: instant,
  overage: amount,
  creditUsed: amount,
});

const event = (over: Partial<UsageEvent> = {}): UsageEvent => ({
  customerId: 'acme\tco',
  feature: 'calls',
  idempotencyKey: 'k\\1',
  value: 3,
  member: null,
  occurredAt: new Date('2026-01-15T12:00:00.000Z'),
  terms: {
    aggregation: 'sum',
    limit: 100,
    overage: 'deny',
    thresholds: [80, 100],
    grants: [],
    period: { start: new Date('2026-01-01T00:00:00.000Z'), end: new Date('2026-02-01T00:00:00.000Z') },
  },
  ...over,
});

describe('ledger lines', () => {
  it("makes an answer's JSON from its stored form exactly as the JSON encoder does", () => {
    fc.assert(
      fc.property(answer, (a) => {
        const raw = encodeAnswer({ ...a, ...(a.accepted ? {} : { reason: 'limit_exceeded' as const }) });
        expect(answerText(raw)).toBe(JSON.stringify(answerJson(decodeAnswer(raw))));
      }),
    );
  });

  it('reads a line back as the row it was made of, whatever the text', () => {
    fc.assert(
      fc.property(fc.constantFrom('test', 'live').chain(ledgerRow), (r: LedgerRow) => {
        expect(rowOfLine(lineOfRow(r))).toEqual(r);
      }),
    );
  });

  it('makes the same line from a head and an answer as from the row (summed, nothing more to tell)', () => {
    const e = event();
    const raw = '1|3|100|97|1769904000000|1767225600000|0|0';
    const lines = new LedgerLines();
    addRecord(lines, `${ledgerHead('test', e, null)}\n${raw}`);
    const expected: LedgerRow = {
      environment: 'test',
      customerId: e.customerId,
      feature: 'calls',
      idempotencyKey: e.idempotencyKey,
      value: 3,
      counted: 3,
      member: null,
      occurredAt: e.occurredAt,
      periodStart: e.terms.period.start,
      periodEnd: e.terms.period.end,
      overage: 0,
      creditDraws: {},
      answer: answerJson(decodeAnswer(raw)),
      reservationId: null,
      crossings: [],
    };
    expect(lines.text()).toBe(lineOfRow(expected));
    expect(lines.rows()).toEqual([expected]);
  });

  it('takes counted, overage, credit and crossings from the lines after the answer', () => {
    const e = event({ member: 'u\n1', terms: { ...event().terms, aggregation: 'unique' }, value: 1 });
    const raw = '1|82|100|20|1769904000000|1767225600000|0|2';
    const lines = new LedgerLines();
    addRecord(lines, `${ledgerHead('test', e, 'res_1')}\n${raw}\n1\n0.5\ngr_1,2\n80\n82`);
    const [r] = lines.rows();
    expect(r).toMatchObject({
      member: 'u\n1',
      reservationId: 'res_1',
      value: 1,
      counted: 1,
      overage: 0.5,
      creditDraws: { gr_1: 2 },
      crossings: [{ threshold: 80, used: 82, limit: 100 }],
    });
    expect(lines.crossed).toEqual([{ line: 0, crossings: [{ threshold: 80, used: 82, limit: 100 }] }]);
    expect(lines.text().split('\t')[12]).toBe('2');
  });

  it('keeps each line with its crossings when entries are joined', () => {
    const a = new LedgerLines();
    addRecord(a, `${ledgerHead('test', event(), null)}\n1|3|100|97|1769904000000|1767225600000|0|0`);
    const b = new LedgerLines();
    addRecord(
      b,
      `${ledgerHead('test', event(), null)}\n1|80|100|20|1769904000000|1767225600000|0|0\n3\n0\n\n80\n80`,
    );
    a.append(b);
    expect(a.count).toBe(2);
    expect(a.crossed.map((c) => c.line)).toEqual([1]);
    expect(a.crossingRows()[0]?.crossings).toEqual([{ threshold: 80, used: 80, limit: 100 }]);
  });

  it("orders lines by customer for COPY, a customer's lines in the order they came", () => {
    const lines = new LedgerLines();
    const raw = '1|3|100|97|1769904000000|1767225600000|0|0';
    for (const [customerId, idempotencyKey] of [
      ['b', '1'],
      ['a', '2'],
      ['b', '3'],
      ['ab', '4'],
      ['a', '5'],
    ])
      addRecord(lines, `${ledgerHead('test', event({ customerId, idempotencyKey }), null)}\n${raw}`);
    const order = lines
      .text()
      .split('\n')
      .filter(Boolean)
      .map((l) => `${l.split('\t')[1]}:${l.split('\t')[3]}`);
    expect(order).toEqual(['a:2', 'a:5', 'ab:4', 'b:1', 'b:3']);
  });
});
