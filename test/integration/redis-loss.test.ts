import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, createTestDatabase, services, type TestApp } from '../helpers/harness.ts';
import { type OwnRedis, startOwnRedis } from '../helpers/own-redis.ts';
import type { Scenario } from '../helpers/scenario.ts';
import { ledgerSum, meteredCustomer, uniqueKey } from './metering-fixtures.ts';

/**
 * Redis losing its data while Tessera runs (a FLUSHDB, a restart without persistence): usage and
 * metered checks answer 503 with Retry-After until the counters are rebuilt from the ledger, and
 * never allow what the ledger's counts refuse. Against a redis-server of its own (started on a
 * spare port, stopped by PID): the shared Redis is never flushed.
 */

/** Polls until `done()` holds, or fails after `ms`. */
async function until(ms: number, done: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const started = Date.now();
  for (;;) {
    if (await done()) return;
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

type UsageReply = { accepted?: boolean; reason?: string; used?: number; code?: string };

describe.skipIf(!services.redis)('usage counters when Redis loses its data', () => {
  let own: OwnRedis;
  let admin: Redis;
  let shared: Awaited<ReturnType<typeof createTestDatabase>>;
  let nodeA: TestApp;
  let nodeB: TestApp;
  let s: Scenario;
  const prefix = `tessera-test:${randomBytes(6).toString('hex')}:`;

  beforeAll(async () => {
    own = await startOwnRedis();
    admin = new Redis(own.url);
    admin.on('error', () => {});
    shared = await createTestDatabase();
    const node = () =>
      createTestApp({
        database: shared.database,
        redis: true,
        config: { redisUrl: own.url, redisPrefix: prefix },
      });
    nodeA = await node();
    nodeB = await node();
    s = await meteredCustomer(nodeA, { limit: 100, overage: 'deny' });
  });
  afterAll(async () => {
    await nodeA?.close();
    await nodeB?.close();
    await shared?.drop();
    admin?.disconnect();
    await own?.stop();
  });

  const usage = (node: TestApp, value: number) =>
    node.json<UsageReply>('POST', '/v1/usage', {
      customer_id: s.customerId,
      feature: s.key('calls'),
      value,
      idempotency_key: uniqueKey(),
    });
  const check = (node: TestApp, quantity: number) =>
    node.json<{ allowed?: boolean; used?: number; code?: string }>('POST', '/v1/check', {
      customer_id: s.customerId,
      feature: s.key('calls'),
      quantity,
    });

  it('answers 503 with Retry-After while the counters are rebuilt after a FLUSHDB, then still refuses 20 at 90 of 100', async () => {
    expect((await usage(nodeA, 90)).body).toMatchObject({ accepted: true, used: 90 });
    // Node B has a cached reading of the counter.
    expect((await check(nodeB, 1)).body).toMatchObject({ allowed: true, used: 90 });
    expect((await check(nodeB, 1)).body).toMatchObject({ allowed: true, used: 90 });
    // In the ledger (events not yet flushed when Redis loses its data are lost with it).
    await nodeA.runtime.metering.flush();

    // `admin` talks to this suite's own redis-server (startOwnRedis above), never the shared one.
    await admin.flushdb();
    // As if another node were rebuilding: nobody here may rebuild until the lock goes.
    await admin.set(`${prefix}u:rebuilding`, 'another node', 'PX', 60_000);

    for (const node of [nodeA, nodeB]) {
      const refused = await usage(node, 20);
      expect(refused.status).toBe(503);
      expect(refused.body.code).toBe('counters_rebuilding');
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(refused.headers.get('content-type')).toContain('application/problem+json');
    }
    // A check never answers from a counter that restarted from zero.
    await until(2000, async () => (await check(nodeB, 20)).status === 503, 'check refused while rebuilding');

    await admin.del(`${prefix}u:rebuilding`);
    let after: Awaited<ReturnType<typeof usage>> | null = null;
    await until(
      5000,
      async () => {
        after = await usage(nodeB, 20);
        return after.status !== 503;
      },
      'usage served again',
    );
    expect(after!.status).toBe(200);
    expect(after!.body).toMatchObject({ accepted: false, reason: 'limit_exceeded', used: 90 });
    expect((await usage(nodeA, 20)).body).toMatchObject({
      accepted: false,
      reason: 'limit_exceeded',
      used: 90,
    });
    expect((await check(nodeB, 20)).body).toMatchObject({ allowed: false, used: 90 });
    expect((await usage(nodeA, 10)).body).toMatchObject({ accepted: true, used: 100 });
    // Node B's cached reading is dropped by Redis's invalidation message, which arrives on its own
    // connection a moment after node A's write.
    await until(2000, async () => (await check(nodeB, 1)).body.used === 100, 'node B sees 100');
    expect((await check(nodeB, 1)).body).toMatchObject({ allowed: false, used: 100 });
    await nodeA.runtime.metering.flush();
    expect((await ledgerSum(s)).counted).toBe(100);
  });

  it('keeps a live reservation through a FLUSHDB: it still holds room and can be committed', async () => {
    const c = await meteredCustomer(nodeA, { limit: 10, overage: 'deny' });
    const body = (value: number) => ({
      customer_id: c.customerId,
      feature: c.key('calls'),
      value,
      idempotency_key: uniqueKey(),
    });
    const hold = await nodeA.json<{ id: string }>('POST', '/v1/reservations', {
      customer_id: c.customerId,
      feature: c.key('calls'),
      amount: 6,
      ttl_seconds: 600,
    });
    expect(hold.status).toBe(201);
    await admin.flushdb();
    const during = await nodeB.json<UsageReply>('POST', '/v1/reservations', {
      customer_id: c.customerId,
      feature: c.key('calls'),
      amount: 1,
      ttl_seconds: 600,
    });
    expect(during.status).toBe(503);
    expect(during.body.code).toBe('counters_rebuilding');
    let after: { status: number; body: UsageReply } | null = null;
    await until(
      5000,
      async () => {
        after = await nodeB.json<UsageReply>('POST', '/v1/usage', body(5));
        return after.status !== 503;
      },
      'usage served again',
    );
    expect(after!.body).toMatchObject({ accepted: false, reason: 'limit_exceeded', used: 6 });
    expect((await nodeA.json<UsageReply>('POST', '/v1/usage', body(4))).body).toMatchObject({
      accepted: true,
      used: 10,
    });
    const commit = await nodeB.json<{ status?: string }>('POST', `/v1/reservations/${hold.body.id}/commit`, {
      amount: 6,
    });
    expect(commit.status).toBe(200);
    await nodeA.runtime.metering.flush();
    expect((await ledgerSum(c)).counted).toBe(10);
  });

  it('notices a restart of Redis without persistence within seconds, with no usage arriving', async () => {
    await nodeA.runtime.metering.flush();
    const before = (await ledgerSum(s)).counted;
    await own.restart();
    // Nothing asks: the once-a-second look at the epoch key finds it gone and rebuilds.
    await until(6000, async () => (await admin.exists(`${prefix}epoch`).catch(() => 0)) === 1, 'rebuilt');
    const refused = await usage(nodeA, 20);
    expect(refused.body).toMatchObject({ accepted: false, reason: 'limit_exceeded', used: before });
    expect((await check(nodeB, 1)).body).toMatchObject({ used: before });
  });
});
