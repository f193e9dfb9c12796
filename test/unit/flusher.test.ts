import { describe, expect, it } from 'vitest';
import { LedgerLines, ledgerHead } from '../../src/modules/metering/ledger/lines.ts';
import { entriesPerStream } from '../../src/modules/metering/redis/flusher.ts';
import { addEntry } from '../../src/modules/metering/redis/stream-records.ts';

/** An event's stream record as the consume script writes it: its head, a newline, its answer. */
const record = (key: string) =>
  `${ledgerHead(
    'test',
    {
      customerId: 'c1',
      feature: 'calls',
      idempotencyKey: key,
      value: 1,
      member: null,
      occurredAt: new Date(1_768_478_400_000),
      terms: {
        aggregation: 'sum',
        limit: 100,
        overage: 'deny',
        thresholds: [100],
        grants: [],
        period: { start: new Date(1_767_225_600_000), end: new Date(1_769_904_000_000) },
      },
    },
    null,
  )}\n1|1|100|99|1769904000000|1767225600000|0|0`;

/** The ledger rows of one entry (what the flusher writes for it). */
function toLedgerRows(fields: string[]) {
  const lines = new LedgerLines();
  addEntry(lines, fields);
  return lines.rows();
}

describe('usage stream entries', () => {
  it("reads every event of an entry, in order (one, or a CONSUME_MANY call's)", () => {
    expect(toLedgerRows(['e', record('k1')]).map((r) => r.idempotencyKey)).toEqual(['k1']);
    const rows = toLedgerRows(['e', record('k1'), 'e', record('k2'), 'e', record('k3')]);
    expect(rows.map((r) => r.idempotencyKey)).toEqual(['k1', 'k2', 'k3']);
    expect(rows[0]).toMatchObject({ customerId: 'c1', feature: 'calls', counted: 1, value: 1 });
  });

  it('refuses an entry it cannot read whole, so none of its events is acknowledged', () => {
    expect(() => toLedgerRows(['e', record('k1'), 'x', record('k2')])).toThrow(/field x/);
    expect(() => toLedgerRows(['e', record('k1'), 'e', 'no answer'])).toThrow();
    expect(() => toLedgerRows([])).toThrow(/without events/);
  });

  it('sizes reads to about 20,000 events, whatever the entries hold', () => {
    expect(entriesPerStream(1, 1)).toBe(1_000);
    expect(entriesPerStream(1, 100)).toBe(200);
    expect(entriesPerStream(200, 1)).toBe(100);
    expect(entriesPerStream(200, 100)).toBe(1);
    expect(entriesPerStream(1, 0)).toBe(1_000);
  });
});
