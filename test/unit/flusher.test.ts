import { describe, expect, it } from 'vitest';
import { entriesPerStream, toLedgerRows } from '../../src/modules/metering/redis/flusher.ts';

const record = (key: string) =>
  [
    JSON.stringify([
      'test',
      'c1',
      'calls',
      key,
      1,
      null,
      1_768_478_400_000,
      1_767_225_600_000,
      1_769_904_000_000,
      null,
    ]),
    '1|1|100|99|1769904000000|1767225600000|0|0',
    '1',
    '0',
    '',
    '',
    '1',
  ].join('\n');

describe('usage stream entries', () => {
  it('reads one event from an entry of CONSUME and every event, in order, from one of CONSUME_MANY', () => {
    expect(toLedgerRows(['e', record('k1')]).map((r) => r.idempotencyKey)).toEqual(['k1']);
    const rows = toLedgerRows(['e', record('k1'), 'e', record('k2'), 'e', record('k3')]);
    expect(rows.map((r) => r.idempotencyKey)).toEqual(['k1', 'k2', 'k3']);
    expect(rows[0]).toMatchObject({ customerId: 'c1', feature: 'calls', counted: 1, value: 1 });
  });

  it('refuses an entry it cannot read whole, so none of its events is acknowledged', () => {
    expect(() => toLedgerRows(['e', record('k1'), 'x', record('k2')])).toThrow(/field x/);
    expect(() => toLedgerRows(['e', record('k1'), 'e', 'not json'])).toThrow();
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
