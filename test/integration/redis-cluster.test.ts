import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { rebuildFromLedger } from '../../src/modules/metering/redis/rebuild.ts';
import { loadScripts } from '../../src/modules/metering/redis/scripts.ts';
import { RedisUsageStore } from '../../src/modules/metering/redis/store.ts';
import { compareWithLedger } from '../../src/modules/metering/redis/verify.ts';
import { ManualClock } from '../../src/platform/clock.ts';
import { createLogger } from '../../src/platform/logger.ts';
import { bullPrefix, connectRedis, waitForRedis } from '../../src/platform/redis.ts';
import { slotOf } from '../../src/platform/redis-slots.ts';
import { startUsageWorkers } from '../../src/workers/usage-flush.ts';
import { createTestApp, createTestDatabase, type TestApp } from '../helpers/harness.ts';
import { type OwnRedisCluster, startOwnRedisCluster } from '../helpers/own-redis-cluster.ts';
import type { Scenario } from '../helpers/scenario.ts';
import { describeUsageStoreContract } from './metering-contract.ts';
import { event, knownCustomers, ledgerSum, meteredCustomer, period, uniqueKey } from './metering-fixtures.ts';

/**
 * Tessera's Redis key scheme on a real Redis Cluster: three masters of this file's own (spare
 * ports, temporary directories, stopped by PID at the end), reached through ioredis's Cluster
 * client as REDIS_CLUSTER_NODES configures it. Every multi-key script call, pipeline and BullMQ
 * script must stay in one slot there, or the cluster refuses it (CROSSSLOT).
 */

const haveRedisCluster =
  spawnSync('redis-server', ['--version']).status === 0 && spawnSync('redis-cli', ['--version']).status === 0;

let cluster: OwnRedisCluster | null = null;
let starting: Promise<OwnRedisCluster> | null = null;
function ownCluster(): Promise<OwnRedisCluster> {
  starting ??= startOwnRedisCluster().then((c) => {
    cluster = c;
    return c;
  });
  return starting;
}
afterAll(async () => {
  await cluster?.stop();
});

const start = '2026-01-15T12:00:00Z';

async function clusterClient(nodes: string[]): Promise<Redis> {
  const redis = connectRedis({ redisUrl: undefined, redisClusterNodes: nodes });
  redis.on('error', () => {});
  await waitForRedis(redis, 15_000);
  return redis;
}

/** A store on the cluster over a fresh database and key prefix. */
async function clusterStoreFixture() {
  const { nodes } = await ownCluster();
  const { database, drop } = await createTestDatabase();
  const clock = new ManualClock(start);
  const redis = await clusterClient(nodes);
  await loadScripts(redis);
  const prefix = `tessera-test:${randomBytes(6).toString('hex')}:`;
  const open = () => new RedisUsageStore(redis, database.db, prefix, clock, createLogger('silent'));
  return {
    store: open(),
    open,
    db: database.db,
    clock,
    redis,
    async close() {
      redis.disconnect();
      await drop();
    },
  };
}

describeUsageStoreContract('redis cluster', clusterStoreFixture, haveRedisCluster);

/** The master serving a customer's slot. */
function masterOf(redis: Redis, environment: string, customerId: string): string {
  return (redis as unknown as Cluster).slots[slotOf(`${environment}:${customerId}`)]![0]!;
}

describe.skipIf(!haveRedisCluster)('usage streams, flush, verify and rebuild on a Redis Cluster', () => {
  it('spreads customers over every master, moves each slot stream to the ledger, and rebuilds the counters', async () => {
    const f = await clusterStoreFixture();
    const { clock, redis, db } = f;
    const api = f.store;
    // A flusher in another process: it finds the slots through the list and the marks.
    const worker = f.open();
    try {
      expect(redis.isCluster).toBe(true);
      const customers = await knownCustomers(db, 30);
      expect(new Set(customers.map((c) => masterOf(redis, 'test', c))).size).toBe(3);

      // Single events (concurrent: one call per slot) and a batch of 90 over all 30 customers.
      const singles = await Promise.all(customers.map((c) => api.record('test', [event(c)], clock.now())));
      expect(singles.every(([a]) => a?.accepted && a.used === 1)).toBe(true);
      const batch = customers.flatMap((c) => [event(c), event(c), event(c, { value: 2 })]);
      const answers = await api.record('test', batch, clock.now());
      expect(answers.every((a) => a.accepted)).toBe(true);
      const repeated = batch[0]!;
      expect((await api.record('test', [repeated], clock.now()))[0]!.used).toBe(answers[0]!.used);

      // Each customer's events went to the stream of its own slot.
      const someone = customers[0]!;
      const stream = api.keys.streamOfSlot(slotOf(`test:${someone}`));
      expect(await redis.xlen(stream)).toBeGreaterThan(0);

      expect(await worker.flush({ full: false })).toBe(30 + 90);
      expect(await worker.flush()).toBe(0);
      expect(await redis.xlen(stream)).toBe(0);
      const verified = await compareWithLedger(api, clock.now(), 'test');
      expect(verified).toMatchObject({ checked: 30, mismatches: [] });

      // Redis loses some counters and an idempotency answer: the ledger puts them back.
      const base = api.keys.customer('test', someone);
      for (const c of customers.slice(0, 10))
        await redis.del(api.keys.counter(api.keys.customer('test', c), 'calls', period));
      await redis.del(api.keys.idempotency(base, repeated.idempotencyKey));
      const lost = await compareWithLedger(api, clock.now(), 'test');
      expect(lost.mismatches).toHaveLength(10);
      const report = await rebuildFromLedger(api, clock.now());
      expect(report.counters).toBe(30);
      expect(report.answers).toBe(120);
      expect((await compareWithLedger(api, clock.now(), 'test')).mismatches).toEqual([]);
      expect(await redis.hget(api.keys.counter(base, 'calls', period), 'u')).toBe('5');
      // The rebuilt idempotency answer replays: nothing counted twice.
      const again = await api.record('test', [repeated], clock.now());
      expect(again[0]!.used).toBe(answers[0]!.used);
      expect(await worker.flush()).toBe(0);
    } finally {
      await f.close();
    }
  });
});

describe.skipIf(!haveRedisCluster)('Tessera on a Redis Cluster (REDIS_CLUSTER_NODES)', () => {
  let shared: Awaited<ReturnType<typeof createTestDatabase>>;
  let nodeA: TestApp;
  let nodeB: TestApp;
  let s: Scenario;
  /** The scenario's customers, on the same plan (`calls` limited to 100 a month, deny). */
  const customers: string[] = [];
  const prefix = `tessera-test:${randomBytes(6).toString('hex')}:`;

  beforeAll(async () => {
    const { nodes } = await ownCluster();
    shared = await createTestDatabase();
    const node = () =>
      createTestApp({ database: shared.database, config: { redisClusterNodes: nodes, redisPrefix: prefix } });
    nodeA = await node();
    nodeB = await node();
    s = await meteredCustomer(nodeA, { limit: 100, overage: 'deny' });
    customers.push(s.customerId);
    for (const name of ['b', 'c', 'd', 'e', 'f']) {
      await s.customer(name);
      await s.subscribe('plan');
      customers.push(s.customerId);
    }
  }, 60_000);
  afterAll(async () => {
    await nodeA?.close();
    await nodeB?.close();
    await shared?.drop();
  });

  type Answer = { accepted?: boolean; used?: number; remaining?: number; reason?: string };
  const usage = (node: TestApp, customerId: string, value: number, key = uniqueKey()) =>
    node.json<Answer>('POST', '/v1/usage', {
      customer_id: customerId,
      feature: s.key('calls'),
      value,
      idempotency_key: key,
    });
  const check = (node: TestApp, customerId: string, quantity = 1) =>
    node.json<{ allowed?: boolean; used?: number; reason?: string }>('POST', '/v1/check', {
      customer_id: customerId,
      feature: s.key('calls'),
      quantity,
    });
  const ledgerOf = async (customerId: string) => {
    const saved = s.customerId;
    s.customerId = customerId;
    try {
      return await ledgerSum(s);
    } finally {
      s.customerId = saved;
    }
  };

  it('runs on the cluster client, with BullMQ keys under a hash tag', () => {
    expect(nodeA.runtime.deps.redis?.isCluster).toBe(true);
    expect(bullPrefix(nodeA.runtime.deps.config, 'tessera')).toBe('{tessera}');
    expect(bullPrefix(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }), 'tessera')).toBe('tessera');
  });

  it('counts single events and batches, holds and commits, and answers metered checks on either node', async () => {
    const [a, b] = customers as [string, string];
    const key = uniqueKey();
    expect((await usage(nodeA, a, 40, key)).body).toMatchObject({ accepted: true, used: 40, remaining: 60 });
    // The same idempotency key on the other node: the first answer, nothing counted.
    expect((await usage(nodeB, a, 40, key)).body).toMatchObject({ accepted: true, used: 40 });
    expect((await usage(nodeB, a, 70)).body).toMatchObject({
      accepted: false,
      reason: 'limit_exceeded',
      used: 40,
    });

    const batch = await nodeB.json<{ results: Answer[] }>('POST', '/v1/usage/batch', {
      events: customers.flatMap((c) =>
        [1, 2, 3].map((value) => ({
          customer_id: c,
          feature: s.key('calls'),
          value,
          idempotency_key: uniqueKey(),
        })),
      ),
    });
    expect(batch.status).toBe(200);
    expect(batch.body.results.map((r) => r.accepted)).toEqual(Array(18).fill(true));
    expect(batch.body.results.slice(0, 3).map((r) => r.used)).toEqual([41, 43, 46]);
    expect(batch.body.results.slice(3, 6).map((r) => r.used)).toEqual([1, 3, 6]);

    expect((await check(nodeA, a, 54)).body).toMatchObject({ allowed: true, used: 46 });
    expect((await check(nodeB, a, 55)).body).toMatchObject({ allowed: false, used: 46 });

    const held = await nodeA.json<{ id?: string; status?: string }>(
      'POST',
      '/v1/reservations',
      { customer_id: b, feature: s.key('calls'), amount: 50, ttl_seconds: 60 },
      { key: nodeA.checkKey },
    );
    expect(held.status).toBe(201);
    expect((await check(nodeB, b, 45)).body).toMatchObject({ allowed: false, used: 56 });
    const committed = await nodeB.json<{ status?: string; usage?: { used?: number } }>(
      'POST',
      `/v1/reservations/${held.body.id}/commit`,
      { amount: 20 },
      { key: nodeB.checkKey },
    );
    expect(committed.body).toMatchObject({ status: 'committed', usage: { used: 26 } });
    expect((await check(nodeA, b, 74)).body).toMatchObject({ allowed: true, used: 26 });

    await nodeA.runtime.metering.flush();
    expect(await ledgerOf(a)).toEqual({ counted: 46, events: 4 });
    expect(await ledgerOf(b)).toEqual({ counted: 26, events: 4 });
    const verified = await nodeA.runtime.metering.store.verify(nodeA.clock.now(), 'test');
    expect(verified?.mismatches).toEqual([]);
  });

  it('moves usage to the ledger through the BullMQ usage worker, with no explicit flush', async () => {
    const c = customers[2]!;
    const before = await ledgerOf(c);
    const workers = await startUsageWorkers(
      nodeB.runtime.metering,
      nodeB.runtime.deps.config,
      createLogger('silent'),
    );
    try {
      for (let i = 0; i < 5; i++) expect((await usage(nodeA, c, 1)).status).toBe(200);
      const sent = Date.now();
      let ledger = await ledgerOf(c);
      while (ledger.events < before.events + 5 && Date.now() - sent < 15_000) {
        await new Promise((r) => setTimeout(r, 50));
        ledger = await ledgerOf(c);
      }
      expect(ledger).toEqual({ counted: before.counted + 5, events: before.events + 5 });
    } finally {
      await workers.stop();
    }
    // The periodic jobs (subscription scheduler) set up their BullMQ schedulers on the cluster too.
    await nodeB.runtime.scheduler.start();
    await nodeB.runtime.scheduler.stop();
  });

  it('rebuilds the counters from the ledger (tessera usage rebuild)', async () => {
    const c = customers[3]!;
    expect((await usage(nodeA, c, 30)).body).toMatchObject({ accepted: true });
    await nodeA.runtime.metering.flush();
    const store = nodeA.runtime.metering.store as RedisUsageStore;
    const row = await nodeA.runtime.deps.db
      .selectFrom('usage_events')
      .select(['period_start', 'period_end'])
      .where('customer_id', '=', c)
      .executeTakeFirstOrThrow();
    const counter = store.keys.counter(store.keys.customer('test', c), s.key('calls'), {
      start: row.period_start,
      end: row.period_end,
    });
    const redis = nodeA.runtime.deps.redis!;
    expect(await redis.hget(counter, 'u')).toBe(String((await ledgerOf(c)).counted));
    await redis.del(counter);
    expect((await check(nodeB, c, 1)).body).toMatchObject({ used: 0 });
    const report = await nodeA.runtime.metering.rebuild();
    expect(report?.counters).toBeGreaterThanOrEqual(customers.length);
    expect((await check(nodeB, c, 1)).body).toMatchObject({
      allowed: true,
      used: (await ledgerOf(c)).counted,
    });
    expect((await nodeA.runtime.metering.store.verify(nodeA.clock.now(), 'test'))?.mismatches).toEqual([]);
  });

  it("keeps the other node's cached snapshot in step through the cluster's pub/sub", async () => {
    const c = customers[4]!;
    expect((await check(nodeB, c, 1)).body).toMatchObject({ allowed: true });
    const saved = s.customerId;
    s.customerId = c;
    try {
      await s.override('calls', { limit: 0 });
    } finally {
      s.customerId = saved;
    }
    const started = Date.now();
    let answer = await check(nodeB, c, 1);
    while (answer.body.allowed !== false && Date.now() - started < 5_000) {
      await new Promise((r) => setTimeout(r, 50));
      answer = await check(nodeB, c, 1);
    }
    expect(answer.body).toMatchObject({ allowed: false });
  });
});
