import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLUSH_GROUP } from '../../src/modules/metering/redis/keys.ts';
import type { RedisUsageStore } from '../../src/modules/metering/redis/store.ts';
import { compareWithLedger } from '../../src/modules/metering/redis/verify.ts';
import type { Database } from '../../src/platform/db.ts';
import { createTestApp, createTestDatabase, services, type TestApp } from '../helpers/harness.ts';
import type { Scenario } from '../helpers/scenario.ts';
import { ledgerSum, meteredCustomer, uniqueKey, use } from './metering-fixtures.ts';

/** Two API nodes in turn on one database and one Redis prefix, like a restart. */
describe.skipIf(!services.redis)('the ledger is the source of truth', () => {
  let database: Database;
  let drop: () => Promise<void>;
  const prefix = `tessera-test:${randomBytes(6).toString('hex')}:`;
  const apps: TestApp[] = [];
  const node = async () => {
    const app = await createTestApp({ redis: true, database, config: { redisPrefix: prefix } });
    apps.push(app);
    return app;
  };
  const storeOf = (app: TestApp) => app.runtime.metering.store as RedisUsageStore;
  const wipeRedis = async (app: TestApp) => {
    const keys = await app.runtime.deps.redis!.keys(`${prefix}*`);
    if (keys.length) await app.runtime.deps.redis!.del(...keys);
  };
  beforeAll(async () => {
    ({ database, drop } = await createTestDatabase());
  });
  afterAll(async () => {
    const live = apps.filter((a) => a.runtime.deps.redis?.status === 'ready');
    if (live[0]) await wipeRedis(live[0]);
    for (const app of live) await app.close();
    await drop();
  });

  async function counters(app: TestApp, s: Scenario): Promise<unknown> {
    const redis = app.runtime.deps.redis!;
    const base = storeOf(app).keys.customer('test', s.customerId);
    const keys = (await redis.keys(`${base}*`)).filter((k) => !k.includes(':i:')).sort();
    return Promise.all(keys.map(async (k) => [k.slice(base.length), await readKey(app, k)]));
  }
  async function readKey(app: TestApp, key: string): Promise<unknown> {
    const redis = app.runtime.deps.redis!;
    const type = await redis.type(key);
    if (type === 'hash') {
      // A counter's absent field means 0; a rebuild writes them all.
      const zero = key.includes(':c:') ? { u: 0, h: 0, o: 0, cr: 0 } : {};
      const fields = Object.entries(await redis.hgetall(key)).map(([f, v]) => [f, Number(v)]);
      return { ...zero, ...Object.fromEntries(fields) };
    }
    if (type === 'set') return (await redis.smembers(key)).sort();
    if (type === 'zset') return redis.zrange(key, '0', '-1');
    return type;
  }

  it('rebuilds every counter, credit use, hold and idempotency answer after Redis loses its data', async () => {
    const a = await node();
    const sum = await meteredCustomer(a, { limit: 10, overage: 'allow' });
    await sum.grant('calls', 5);
    for (const value of [4, 4, 4, 4]) await use(sum, { value });
    const remembered = await use(sum, { value: 1, idempotency_key: 'remember-me' });
    await a.json('POST', '/v1/reservations', {
      customer_id: sum.customerId,
      feature: sum.key('calls'),
      amount: 2,
      ttl_seconds: 600,
    });
    const peak = await meteredCustomer(a, { limit: 100, aggregation: 'max' });
    for (const value of [10, 70, 30]) await use(peak, { value });
    const distinct = await meteredCustomer(a, { limit: 100, aggregation: 'unique' });
    for (const member of ['x', 'y', 'x', 'z']) await use(distinct, { member });
    await a.runtime.metering.flush();
    const before = await Promise.all([sum, peak, distinct].map((s) => counters(a, s)));

    await wipeRedis(a);
    await a.runtime.close();
    const b = await node(); // the start-up check sees the marker gone and rebuilds
    expect(await Promise.all([sum, peak, distinct].map((s) => counters(b, s)))).toEqual(before);
    const check = await compareWithLedger(storeOf(b), b.clock.now(), 'test');
    expect(check.checked).toBeGreaterThanOrEqual(3);
    expect(check.mismatches).toEqual([]);
    const replay = await b.json('POST', '/v1/usage', {
      customer_id: sum.customerId,
      feature: sum.key('calls'),
      value: 1,
      idempotency_key: 'remember-me',
    });
    expect(replay.body).toEqual(remembered.body);
    expect((await ledgerSum(sum)).counted).toBe(17);
    // The CLI verb does the same on demand, and is safe to repeat.
    await b.runtime.metering.rebuild();
    expect(await Promise.all([sum, peak, distinct].map((s) => counters(b, s)))).toEqual(before);
  });

  it('loses no accepted event when a node stops mid-batch and before the flusher ran', async () => {
    const a = await node();
    const s = await meteredCustomer(a, { limit: 1_000_000 });
    const batch = (n: number) => ({
      events: Array.from({ length: n }, () => ({
        customer_id: s.customerId,
        feature: s.key('calls'),
        value: 1,
        idempotency_key: uniqueKey(),
      })),
    });
    const answered = await a.json<{ results: Array<{ accepted: boolean }> }>(
      'POST',
      '/v1/usage/batch',
      batch(300),
    );
    expect(answered.body.results.every((r) => r.accepted)).toBe(true);
    // A flusher read these and died before writing them: they sit in its pending list.
    const redis = a.runtime.deps.redis!;
    for (const slot of await redis.smembers(storeOf(a).keys.slots)) {
      await redis.call(
        'XREADGROUP',
        'GROUP',
        FLUSH_GROUP,
        'crashed-flusher',
        'COUNT',
        1000,
        'STREAMS',
        storeOf(a).keys.streamOfSlot(Number(slot)),
        '>',
      );
    }
    const second = await a.json<{ results: Array<{ accepted: boolean }> }>(
      'POST',
      '/v1/usage/batch',
      batch(200),
    );
    expect(second.status).toBe(200);
    const inFlight = a.json('POST', '/v1/usage/batch', batch(500)).catch(() => null);
    await a.runtime.close();
    const third = await inFlight;

    const b = await node();
    await b.runtime.metering.flush({ claimIdleMs: 0 });
    const ledger = await ledgerSum(s);
    const accepted =
      500 + ((third?.status === 200 ? (third.body as { results: unknown[] }).results.length : 0) as number);
    expect(ledger.events).toBeGreaterThanOrEqual(accepted);
    expect(ledger.events).toBeLessThanOrEqual(1000);
    expect((await compareWithLedger(storeOf(b), b.clock.now(), 'test')).mismatches).toEqual([]);
    const after = await b.json<{ entitlements: Array<{ feature: string; used: number }> }>(
      'GET',
      `/v1/customers/${s.customerId}/entitlements`,
    );
    expect(after.body.entitlements.find((e) => e.feature === s.key('calls'))?.used).toBe(ledger.counted);
  });
});
