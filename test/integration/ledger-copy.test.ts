import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LedgerCopier } from '../../src/modules/metering/ledger/copy.ts';
import { appendToLedger } from '../../src/modules/metering/ledger/ledger.ts';
import { LedgerLines } from '../../src/modules/metering/ledger/lines.ts';
import type { LedgerRow } from '../../src/modules/metering/ledger/row.ts';
import type { Database } from '../../src/platform/db.ts';
import { createTestDatabase, services } from '../helpers/harness.ts';
import { ledgerRow } from '../helpers/ledger-rows.ts';

/** Rows through a copier, as the flusher sends them: ledger lines. */
async function copyRows(copier: LedgerCopier, rows: LedgerRow[]): Promise<boolean> {
  return copier.copy(LedgerLines.ofRows(rows).text());
}

describe.skipIf(!services.postgres)('ledger rows through COPY', () => {
  let database: Database;
  let drop: () => Promise<void>;
  let copier: LedgerCopier;
  beforeAll(async () => {
    ({ database, drop } = await createTestDatabase());
    copier = new LedgerCopier(database.pool);
  });
  afterAll(() => drop());

  /** Every column as PostgreSQL holds it, in text (numeric exactly), in the order the rows were given. */
  async function stored(environment: string, keys: string[]) {
    const { rows } = await sql<Record<string, string | null>>`
      SELECT customer_id, feature, idempotency_key, value::text, counted::text, member,
        occurred_at::text, period_start::text, period_end::text, overage::text, credit::text,
        credit_draws::text, answer::text, reservation_id
      FROM usage_events WHERE environment = ${environment}`.execute(database.db);
    const byKey = new Map(rows.map((r) => [`${r.customer_id}\u0001${r.idempotency_key}`, r]));
    return keys.map((k) => byKey.get(k));
  }

  it('writes exactly what the insert writes, whatever the text and numbers', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.uniqueArray(ledgerRow(''), {
          minLength: 1,
          maxLength: 20,
          selector: (r) => `${r.customerId}\u0001${r.idempotencyKey}`,
        }),
        async (rows) => {
          const run = randomBytes(4).toString('hex');
          const copied = rows.map((r) => ({ ...r, environment: `copy_${run}` }));
          const inserted = rows.map((r) => ({ ...r, environment: `insert_${run}` }));
          expect(await copyRows(copier, copied)).toBe(true);
          expect(await appendToLedger(database.db, inserted)).toBe(rows.length);
          const keys = rows.map((r) => `${r.customerId}\u0001${r.idempotencyKey}`);
          const viaCopy = await stored(`copy_${run}`, keys);
          expect(viaCopy.every((r) => r !== undefined)).toBe(true);
          expect(viaCopy).toEqual(await stored(`insert_${run}`, keys));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('writes nothing of a batch holding a row already there, and the append then adds the rest', async () => {
    const environment = `dup_${randomBytes(4).toString('hex')}`;
    const [first, second, third] = fc.sample(ledgerRow(environment), 3).map((r, i) => ({
      ...r,
      customerId: 'acme',
      idempotencyKey: `key-${i}`,
    })) as [LedgerRow, LedgerRow, LedgerRow];
    expect(await copyRows(copier, [first, second])).toBe(true);
    // Delivered again with a new one: COPY refuses the batch whole, the insert skips the known rows.
    expect(await copyRows(copier, [second, third])).toBe(false);
    expect(await stored(environment, ['acme\u0001key-2'])).toEqual([undefined]);
    expect(await appendToLedger(database.db, [second, third], copier)).toBe(1);
    expect(await appendToLedger(database.db, [first, second, third], copier)).toBe(0);
    const count = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM usage_events WHERE environment = ${environment}`.execute(database.db);
    expect(count.rows[0]?.n).toBe(3);
  });

  it('fails a batch PostgreSQL or the encoder refuses, writes none of it, and keeps the connection usable', async () => {
    const environment = `bad_${randomBytes(4).toString('hex')}`;
    const pool = new pg.Pool({ connectionString: database.url!, max: 1 });
    const single = new LedgerCopier(pool);
    try {
      const [good, other] = fc.sample(ledgerRow(environment), 2).map((r, i) => ({
        ...r,
        customerId: 'acme',
        idempotencyKey: `key-${i}`,
      })) as [LedgerRow, LedgerRow];
      // PostgreSQL text cannot hold NUL: the COPY fails on the server, and is rolled back.
      await expect(copyRows(single, [good, { ...other, idempotencyKey: 'nul\u0000' }])).rejects.toThrow();
      // A number no column can hold: refused before anything is sent.
      await expect(copyRows(single, [good, { ...other, value: Number.NaN }])).rejects.toThrow(RangeError);
      // The pool's only connection still works.
      expect(await copyRows(single, [good, other])).toBe(true);
      const count = await sql<{ n: number }>`
        SELECT count(*)::int AS n FROM usage_events WHERE environment = ${environment}`.execute(database.db);
      expect(count.rows[0]?.n).toBe(2);
    } finally {
      await pool.end();
    }
  });

  it('announces a threshold crossing once, also when the batch is delivered again', async () => {
    const environment = `thr_${randomBytes(4).toString('hex')}`;
    const [row] = fc.sample(ledgerRow(environment), 1).map((r) => ({
      ...r,
      customerId: 'acme',
      idempotencyKey: 'crossing',
      crossings: [{ threshold: 80, used: 80, limit: 100 }],
    })) as [LedgerRow];
    expect(await appendToLedger(database.db, [row], copier)).toBe(1);
    expect(await appendToLedger(database.db, [row], copier)).toBe(0);
    const events = await sql<{ n: number }>`
      SELECT count(*)::int AS n FROM outbox
      WHERE environment = ${environment} AND topic = 'usage.threshold_reached'`.execute(database.db);
    expect(events.rows[0]?.n).toBe(1);
  });
});
