import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Database, openEmbedded } from '../../src/platform/db.ts';
import { createTestApp, services, type TestApp } from '../helpers/harness.ts';
import { ledgerSum, meteredCustomer, use, usedNow } from './metering-fixtures.ts';

describe.each([
  ['redis', true],
  ['postgres', false],
] as const)('usage under concurrency (%s store)', (_name, redis) => {
  let app: TestApp;
  beforeAll(async () => {
    if (redis && !services.redis) return;
    app = await createTestApp({ redis });
  });
  afterAll(async () => app?.close());
  const run = it.skipIf(redis && !services.redis);

  run('200 parallel requests of 1 unit against a deny limit of 100 accept exactly 100', async () => {
    const s = await meteredCustomer(app, { limit: 100 });
    const answers = await Promise.all(Array.from({ length: 200 }, () => use(s)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(answers.filter((a) => a.body.accepted === true)).toHaveLength(100);
    expect(answers.filter((a) => a.body.reason === 'limit_exceeded')).toHaveLength(100);
    expect(await usedNow(s)).toBe(100);
    await app.runtime.metering.flush();
    expect(await ledgerSum(s)).toEqual({ counted: 100, events: 100 });
  });

  run('the same idempotency key sent concurrently counts once and answers alike', async () => {
    const s = await meteredCustomer(app, { limit: 100 });
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => use(s, { value: 5, idempotency_key: 'dup' })),
    );
    expect(new Set(answers.map((a) => JSON.stringify(a.body))).size).toBe(1);
    expect(await usedNow(s)).toBe(5);
    await app.runtime.metering.flush();
    expect(await ledgerSum(s)).toEqual({ counted: 5, events: 1 });
  });

  run('announces each threshold once per period when many events cross it at once', async () => {
    const s = await meteredCustomer(app, { limit: 100, overage: 'allow', notify: [50, 80] });
    await Promise.all(Array.from({ length: 150 }, () => use(s)));
    await app.runtime.metering.flush();
    const rows = await sql<{ payload: Record<string, unknown> }>`
      SELECT payload FROM outbox WHERE topic = 'usage.threshold_reached' AND customer_id = ${s.customerId}
      ORDER BY id`.execute(app.runtime.deps.db);
    const payloads = rows.rows.map((r) => r.payload);
    expect(payloads.map((p) => p.threshold).sort()).toEqual([100, 50, 80]);
    for (const p of payloads) {
      expect(p).toMatchObject({ customer_id: s.customerId, feature: s.key('calls'), limit: 100 });
      expect(p.used).toBe(p.threshold);
      expect(typeof p.period_start).toBe('string');
    }
    await app.runtime.metering.flush();
    const again = await sql<{ n: string }>`
      SELECT count(*) AS n FROM outbox WHERE topic = 'usage.threshold_reached' AND customer_id = ${s.customerId}`.execute(
      app.runtime.deps.db,
    );
    expect(Number(again.rows[0]!.n)).toBe(3);
  });
});

describe('usage under concurrency (embedded PGlite store)', () => {
  let app: TestApp;
  let database: Database;
  beforeAll(async () => {
    database = await openEmbedded(null);
    app = await createTestApp({ database });
  });
  afterAll(async () => {
    await app?.close();
    await database?.close();
  });

  it('200 parallel requests of 1 unit against a deny limit of 100 accept exactly 100', async () => {
    const s = await meteredCustomer(app, { limit: 100 });
    const answers = await Promise.all(Array.from({ length: 200 }, () => use(s)));
    expect(answers.filter((a) => a.body.accepted === true)).toHaveLength(100);
    expect(await usedNow(s)).toBe(100);
    expect(await ledgerSum(s)).toEqual({ counted: 100, events: 100 });
  });
});
