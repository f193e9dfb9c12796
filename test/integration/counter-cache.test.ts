import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CounterCache, type CounterReply } from '../../src/modules/metering/redis/counter-cache.ts';
import { loadScripts, runScript, SCRIPTS } from '../../src/modules/metering/redis/scripts.ts';
import { RedisUsageStore } from '../../src/modules/metering/redis/store.ts';
import { ManualClock } from '../../src/platform/clock.ts';
import { createLogger } from '../../src/platform/logger.ts';
import { createTestDatabase, createTestNodes, services, type TestApp } from '../helpers/harness.ts';
import { startOwnRedis } from '../helpers/own-redis.ts';
import type { Scenario } from '../helpers/scenario.ts';
import { customer, event, meteredCustomer, period, snapshot, uniqueKey } from './metering-fixtures.ts';

/** Polls until `done()` holds, or fails after `ms`. */
async function until(ms: number, done: () => boolean | Promise<boolean>, what: string): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await done()) return Date.now() - started;
    if (Date.now() - started > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/**
 * Two API nodes on one Postgres and one Redis. Node A caches counter readings for its checks;
 * usage recorded anywhere must show in A's next answers (Redis's tracking invalidations), and
 * what A records itself at once.
 */
describe.skipIf(!services.redis)('cached counter readings across nodes', () => {
  let nodes: Awaited<ReturnType<typeof createTestNodes>>;
  let nodeA: TestApp;
  let nodeB: TestApp;
  let s: Scenario;
  beforeAll(async () => {
    nodes = await createTestNodes();
    ({ nodeA, nodeB } = nodes);
    s = await meteredCustomer(nodeA, { limit: 100 });
  });
  afterAll(async () => {
    await nodes?.close();
  });

  const cacheOf = (node: TestApp) => {
    const store = node.runtime.metering.store;
    if (!(store instanceof RedisUsageStore) || !store.counters) throw new Error('no counter cache');
    return store.counters;
  };

  async function check(node: TestApp, quantity = 1) {
    const res = await node.json<{ allowed: boolean; used: number; remaining: number }>('POST', '/v1/check', {
      customer_id: s.customerId,
      feature: s.key('calls'),
      quantity,
    });
    expect(res.status).toBe(200);
    return res.body;
  }

  async function use(node: TestApp, value: number) {
    const res = await node.json<{ accepted: boolean; used: number }>('POST', '/v1/usage', {
      customer_id: s.customerId,
      feature: s.key('calls'),
      value,
      idempotency_key: uniqueKey(),
    });
    expect(res.status).toBe(200);
    return res.body;
  }

  it('answers a repeated check from the cache, and sees usage recorded on another node', async () => {
    const cache = cacheOf(nodeA);
    await until(2000, () => cache.tracking, 'tracking on');
    expect((await check(nodeA)).used).toBe(0);
    const hits = cache.hits;
    expect((await check(nodeA)).used).toBe(0);
    expect(cache.hits).toBe(hits + 1);

    expect((await use(nodeB, 5)).used).toBe(5);
    const took = await until(1000, async () => (await check(nodeA)).used === 5, 'node A sees 5');
    expect(took).toBeLessThan(1000);
    // Cached again after the miss that read 5.
    const before = cache.hits;
    expect((await check(nodeA)).used).toBe(5);
    expect(cache.hits).toBe(before + 1);
  });

  it('reuses a metered answer while the counter reads the same, for a quantity of 1 only', async () => {
    const t = await meteredCustomer(nodeA, { limit: 10 });
    const feature = t.key('calls');
    const ask = async (node: TestApp, quantity?: number) => {
      const res = await node.json<{ allowed: boolean; reason: string; used: number; remaining: number }>(
        'POST',
        '/v1/check',
        { customer_id: t.customerId, feature, ...(quantity === undefined ? {} : { quantity }) },
      );
      expect(res.status).toBe(200);
      return res.body;
    };
    const record = async (node: TestApp, value: number) => {
      const res = await node.json('POST', '/v1/usage', {
        customer_id: t.customerId,
        feature,
        value,
        idempotency_key: uniqueKey(),
      });
      expect(res.status).toBe(200);
    };
    await until(2000, () => cacheOf(nodeA).tracking, 'tracking on');
    const engine = nodeA.runtime.deps.services.decisions;
    const resolve = () => engine.resolve('test', t.customerId, new Date(), feature);
    await ask(nodeA);
    // The counter is cached and unchanged: the very same resolution, hence the same kept answer.
    const first = await resolve();
    expect(await resolve()).toBe(first);
    expect(await ask(nodeA)).toMatchObject({ allowed: true, used: 0, remaining: 10 });
    // Other quantities are decided afresh against the same reading, before and after the kept answer.
    expect((await ask(nodeA, 10)).allowed).toBe(true);
    expect(await ask(nodeA, 11)).toMatchObject({ allowed: false, reason: 'limit_exceeded' });
    expect((await ask(nodeA, 1)).allowed).toBe(true);

    await record(nodeA, 9);
    expect(await resolve()).not.toBe(first);
    expect(await ask(nodeA)).toMatchObject({ allowed: true, used: 9, remaining: 1 });
    expect(await ask(nodeA, 2)).toMatchObject({ allowed: false, used: 9 });
    expect(await ask(nodeA)).toMatchObject({ allowed: true, used: 9 });

    // Usage on the other node reaches this node's kept answer through Redis's invalidation.
    await record(nodeB, 1);
    await until(1000, async () => (await ask(nodeA)).allowed === false, 'node A sees the limit reached');
    expect(await ask(nodeA)).toMatchObject({ used: 10, remaining: 0, reason: 'limit_exceeded' });
  });

  it('sees its own usage at once (no waiting for the invalidation)', async () => {
    const start = (await check(nodeA)).used;
    await check(nodeA);
    expect((await use(nodeA, 3)).used).toBe(start + 3);
    expect((await check(nodeA)).used).toBe(start + 3);
    const entitlements = await nodeA.json<{ entitlements: Array<{ feature: string; used?: number }> }>(
      'GET',
      `/v1/customers/${s.customerId}/entitlements`,
    );
    expect(entitlements.body.entitlements.find((e) => e.feature === s.key('calls'))?.used).toBe(start + 3);
  });

  it('does not cache a reading with live holds, and sees a hold made on another node', async () => {
    const cache = cacheOf(nodeA);
    const start = (await check(nodeA)).used;
    const hold = await nodeB.json<{ id: string }>('POST', '/v1/reservations', {
      customer_id: s.customerId,
      feature: s.key('calls'),
      amount: 10,
      ttl_seconds: 60,
    });
    expect(hold.status).toBe(201);
    await until(1000, async () => (await check(nodeA)).used === start + 10, 'node A sees the hold');
    const hits = cache.hits;
    expect((await check(nodeA)).used).toBe(start + 10);
    expect((await check(nodeA)).used).toBe(start + 10);
    expect(cache.hits).toBe(hits);
    expect((await nodeB.json('POST', `/v1/reservations/${hold.body.id}/release`, {})).status).toBe(200);
    await until(1000, async () => (await check(nodeA)).used === start, 'node A sees the release');
  });

  it('answers every check while its tracking connections are killed under it', async () => {
    const expected = (await check(nodeA)).used;
    const redis = nodeA.runtime.deps.redis!;
    const ids = String(await redis.client('LIST'))
      .split('\n')
      .filter((line) => line.includes('name=tessera:counter-cache'))
      .map((line) => /id=(\d+)/.exec(line)![1]!);
    const checks = Array.from({ length: 60 }, () => check(nodeA));
    await Promise.all(ids.map((id) => redis.client('KILL', 'ID', id).catch(() => 0)));
    checks.push(...Array.from({ length: 60 }, () => check(nodeA)));
    for (const answer of await Promise.all(checks)) expect(answer.used).toBe(expected);
    await until(3000, () => cacheOf(nodeA).tracking && cacheOf(nodeB).tracking, 'tracking on again');
  });

  it('answers a deny limit from current usage under concurrent events on both nodes', async () => {
    const start = (await check(nodeA)).used;
    const room = 100 - start;
    const results = await Promise.all(
      Array.from({ length: room + 20 }, (_, i) => use(i % 2 ? nodeA : nodeB, 1)),
    );
    expect(results.filter((r) => r.accepted)).toHaveLength(room);
    await until(1000, async () => !(await check(nodeA)).allowed, 'node A refuses');
    expect((await check(nodeA)).used).toBe(100);
    expect((await check(nodeB)).used).toBe(100);
  });
});

/** The cache against the real Redis, without an app: races, lost connections, flushes, bounds. */
describe.skipIf(!services.redis)('counter cache and Redis tracking', () => {
  const url = inject('redisUrl')!;
  let redis: Redis;
  let other: Redis;
  const prefix = `tessera-test:${randomBytes(6).toString('hex')}:`;
  const logger = createLogger('silent');
  /** The caches' clock: entries age when it moves (no waiting). */
  const clock = new ManualClock('2026-01-15T12:00:00Z');
  const open: CounterCache[] = [];

  beforeAll(async () => {
    redis = new Redis(url);
    other = new Redis(url);
    await loadScripts(redis);
  });
  afterAll(async () => {
    for (const cache of open) cache.stop();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    redis.disconnect();
    other.disconnect();
  });

  async function started(options: Partial<ConstructorParameters<typeof CounterCache>[3]> = {}) {
    const cache = new CounterCache(redis, clock, logger, {
      maxEntries: 1000,
      maxAgeMs: 60_000,
      retryMs: 20,
      ...options,
    });
    open.push(cache);
    await cache.start();
    await until(2000, () => cache.tracking, 'tracking on');
    return cache;
  }

  function keysOf(name: string): string[] {
    const base = `${prefix}u:{test:${name}}:`;
    return [`${base}c:calls:0`, `${base}g:calls`, `${base}z:calls:0`];
  }

  /** A tracked read through the cache, as the store does it. */
  async function read(cache: CounterCache, keys: string[]): Promise<CounterReply[]> {
    const tracked = cache.begin(keys);
    expect(tracked).not.toBeNull();
    const reply = (await runScript(tracked!.connection, SCRIPTS.read, keys, [Date.now()])) as CounterReply[];
    cache.settle(tracked!, reply);
    return reply;
  }

  it('caches a reading and drops it when another client changes the counter', async () => {
    const cache = await started();
    const keys = keysOf(randomBytes(4).toString('hex'));
    await other.hset(keys[0]!, 'u', '4');
    expect((await read(cache, keys))[0]![0]).toBe('4');
    expect(cache.get(keys[0]!)?.[0]).toBe('4');
    await other.hincrby(keys[0]!, 'u', 1);
    await until(1000, () => cache.get(keys[0]!) === undefined, 'entry dropped');
    expect((await read(cache, keys))[0]![0]).toBe('5');
    // The credit key feeds the reading too.
    await other.hset(keys[1]!, 'grant_1', '2');
    await until(1000, () => cache.get(keys[0]!) === undefined, 'entry dropped on credit change');
  });

  it('does not cache a read whose key was invalidated while it was in flight', async () => {
    const cache = await started();
    const keys = keysOf(randomBytes(4).toString('hex'));
    await other.hset(keys[0]!, 'u', '1');
    const tracked = cache.begin(keys)!;
    const stale = (await runScript(tracked.connection, SCRIPTS.read, keys, [Date.now()])) as CounterReply[];
    const seen = cache.invalidations;
    await other.hset(keys[0]!, 'u', '2');
    await until(1000, () => cache.invalidations > seen, 'invalidation received');
    cache.settle(tracked, stale);
    expect(cache.get(keys[0]!)).toBeUndefined();
    // A read after it is cached as usual.
    await read(cache, keys);
    expect(cache.get(keys[0]!)?.[0]).toBe('2');
  });

  it('drops what this process wrote as soon as it says so', async () => {
    const cache = await started();
    const keys = keysOf(randomBytes(4).toString('hex'));
    await read(cache, keys);
    expect(cache.get(keys[0]!)).toBeDefined();
    cache.written([keys[2]!]);
    expect(cache.get(keys[0]!)).toBeUndefined();
  });

  it('clears itself when a connection is killed, and tracks again on fresh connections', async () => {
    const cache = await started();
    const keys = keysOf(randomBytes(4).toString('hex'));
    await read(cache, keys);
    expect(cache.size).toBe(1);
    const ids = String(await other.client('LIST'))
      .split('\n')
      .filter((line) => line.includes('name=tessera:counter-cache'))
      .map((line) => /id=(\d+)/.exec(line)![1]!);
    expect(ids.length).toBeGreaterThanOrEqual(2);
    for (const id of ids) await other.client('KILL', 'ID', id).catch(() => 0);
    await until(1000, () => !cache.tracking || cache.size === 0, 'cache cleared');
    expect(cache.size).toBe(0);
    // A change made while it was down is read afresh, and tracked again afterwards.
    await other.hset(keys[0]!, 'u', '9');
    await until(3000, () => cache.tracking, 'tracking on again');
    expect((await read(cache, keys))[0]![0]).toBe('9');
    expect(cache.get(keys[0]!)?.[0]).toBe('9');
    await other.hset(keys[0]!, 'u', '10');
    await until(1000, () => cache.get(keys[0]!) === undefined, 'entry dropped after re-arming');
  });

  it('forgets everything on FLUSHDB (on a redis-server of its own)', async () => {
    // Never a FLUSHDB on the shared Redis: other processes use every database of it.
    const server = await startOwnRedis();
    const own = new Redis(server.url);
    try {
      await loadScripts(own);
      const cache = new CounterCache(own, clock, logger, { maxEntries: 10, maxAgeMs: 60_000 });
      open.push(cache);
      await cache.start();
      await until(2000, () => cache.tracking, 'tracking on');
      const tracked = cache.begin(keysOf('flush'))!;
      const reply = (await runScript(tracked.connection, SCRIPTS.read, tracked.keys, [
        Date.now(),
      ])) as CounterReply[];
      cache.settle(tracked, reply);
      expect(cache.size).toBe(1);
      await own.flushdb();
      await until(1000, () => cache.size === 0, 'cache emptied');
      cache.stop();
    } finally {
      own.disconnect();
      await server.stop();
    }
  });

  it('bounds entries by age and by number', async () => {
    const aged = await started({ maxAgeMs: 30 });
    const keys = keysOf(randomBytes(4).toString('hex'));
    await read(aged, keys);
    expect(aged.get(keys[0]!)).toBeDefined();
    clock.advance(50);
    expect(aged.get(keys[0]!)).toBeUndefined();

    // Still not handed out once past its age, whatever is read meanwhile.
    await other.hset(keys[0]!, 'u', '3');
    expect(aged.get(keys[0]!)).toBeUndefined();

    const small = await started({ maxEntries: 2 });
    const sets = [1, 2, 3].map(() => keysOf(randomBytes(4).toString('hex')));
    for (const k of sets) await read(small, k);
    expect(small.size).toBe(2);
    expect(small.get(sets[0]![0]!)).toBeUndefined();
    expect(small.get(sets[2]![0]!)).toBeDefined();
  });

  it('hands out the same reply object when a reading past its age is read again unchanged', async () => {
    const cache = await started({ maxAgeMs: 30 });
    const keys = keysOf(randomBytes(4).toString('hex'));
    await other.hset(keys[0]!, 'u', '7');
    const [first] = await read(cache, keys);
    expect(cache.get(keys[0]!)).toBe(first);
    clock.advance(50);
    expect(cache.get(keys[0]!)).toBeUndefined();
    // Read again, unchanged: the reply the read returns is the object handed out before.
    const [again] = await read(cache, keys);
    expect(again).toBe(first);
    expect(cache.get(keys[0]!)).toBe(first);
    // A reply that differs from the aged entry (a change no invalidation reported) replaces it.
    clock.advance(50);
    const tracked = cache.begin(keys)!;
    const replies: CounterReply[] = [['7', '0', '0', ['grant_1', '1']]];
    const changed = replies[0];
    cache.settle(tracked, replies);
    expect(replies[0]).toBe(changed);
    expect(cache.get(keys[0]!)).toBe(changed);
    // Changed for real: the invalidation drops it, and the next read caches the new reply.
    await other.hset(keys[0]!, 'u', '8');
    await until(1000, () => cache.get(keys[0]!) === undefined, 'entry dropped');
    const [fresh] = await read(cache, keys);
    expect(fresh).not.toBe(first);
    expect(fresh![0]).toBe('8');
  });

  it('falls back to the shared connection when the tracking one dies under a read', async () => {
    const { database, drop } = await createTestDatabase();
    const store = new RedisUsageStore(redis, database.db, prefix, clock, logger);
    try {
      await store.startCounterCache({ maxEntries: 100, maxAgeMs: 60_000, retryMs: 20 });
      const cache = store.counters!;
      await until(2000, () => cache.tracking, 'tracking on');
      const id = customer();
      const [answer] = await store.record('test', [event(id, { value: 7 })], clock.now());
      expect(answer?.accepted).toBe(true);
      const queries = [{ feature: 'calls', period }];
      const reading = store.read('test', snapshot(id, 'sum'), queries);
      // The batcher sends the read in setImmediate; the tracking connection's socket is destroyed
      // right after, before any reply can arrive.
      await new Promise((r) => setImmediate(r));
      cache.connection!.stream.destroy();
      expect((await reading).get('calls')?.used).toBe(7);
      expect(cache.size).toBe(0);
      await until(3000, () => cache.tracking, 'tracking on again');
      expect((await store.read('test', snapshot(id, 'sum'), queries)).get('calls')?.used).toBe(7);
      expect(cache.size).toBe(1);
    } finally {
      store.stopCounterCache();
      await drop();
    }
  });

  it('reads without caching while Redis tracking is off', async () => {
    const cache = new CounterCache(redis, clock, logger, { maxEntries: 10, maxAgeMs: 60_000 });
    expect(cache.begin(keysOf('off'))).toBeNull();
    expect(cache.tracking).toBe(false);
  });
});
