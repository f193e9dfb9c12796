import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { describe, expect, inject, it } from 'vitest';
import { LedgerCopier } from '../../src/modules/metering/ledger/copy.ts';
import { PostgresUsageStore } from '../../src/modules/metering/postgres/store.ts';
import { rebuildFromLedger } from '../../src/modules/metering/redis/rebuild.ts';
import { loadScripts } from '../../src/modules/metering/redis/scripts.ts';
import {
  DEFAULT_REDIS_OPTIONS,
  type RedisStoreOptions,
  RedisUsageStore,
} from '../../src/modules/metering/redis/store.ts';
import { compareWithLedger } from '../../src/modules/metering/redis/verify.ts';
import { ManualClock } from '../../src/platform/clock.ts';
import { createLogger } from '../../src/platform/logger.ts';
import { createTestDatabase, services } from '../helpers/harness.ts';
import { describeUsageStoreContract } from './metering-contract.ts';
import { event, knownCustomer, knownCustomers, period, terms } from './metering-fixtures.ts';

const start = '2026-01-15T12:00:00Z';

describeUsageStoreContract('postgres', async () => {
  const { database, drop } = await createTestDatabase();
  const clock = new ManualClock(start);
  return { store: new PostgresUsageStore(database.db, clock), db: database.db, clock, close: drop };
});

/** A fresh database and key prefix on the real Redis; `store()` opens a store over them. */
async function redisFixture() {
  const { database, drop } = await createTestDatabase();
  const clock = new ManualClock(start);
  const redis = new Redis(inject('redisUrl')!);
  const prefix = `tessera-test:${randomBytes(6).toString('hex')}:`;
  await loadScripts(redis);
  return {
    database,
    clock,
    redis,
    /** With `copy`, the flusher writes the ledger through COPY (as the runtime does on PostgreSQL). */
    store: (options: Partial<RedisStoreOptions> & { copy?: boolean } = {}) => {
      const { copy, ...rest } = options;
      return new RedisUsageStore(redis, database.db, prefix, clock, createLogger('silent'), {
        ...DEFAULT_REDIS_OPTIONS,
        ...(copy ? { copier: new LedgerCopier(database.pool) } : {}),
        ...rest,
      });
    },
    async close() {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
      redis.disconnect();
      await drop();
    },
  };
}

function redisStore(options: Partial<RedisStoreOptions> & { copy?: boolean } = {}) {
  return async () => {
    const f = await redisFixture();
    return { store: f.store(options), db: f.database.db, clock: f.clock, close: f.close };
  };
}

describeUsageStoreContract('redis', redisStore(), services.redis);

describeUsageStoreContract('redis, ledger through COPY', redisStore({ copy: true }), services.redis);

// What a Redis Cluster client does: calls made together go out as one script call per slot.
describeUsageStoreContract('redis, one call per slot', redisStore({ groupBySlot: true }), services.redis);

describe.skipIf(!services.redis)('unique members past the exact cap (Redis)', () => {
  it('switches to a HyperLogLog, still counts repeats once, and rebuilds the same way', async () => {
    const f = await redisFixture();
    const { clock, redis } = f;
    const store = f.store({ exactMembers: 3 });
    try {
      const c = await knownCustomer(f.database.db);
      const t = terms({ aggregation: 'unique', limit: null });
      const members = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'a', 'e', 'g'];
      const answers = await store.record(
        'test',
        members.map((member) => event(c, { member, terms: t })),
        clock.now(),
      );
      expect(answers.map((a) => a.used)).toEqual([1, 2, 3, 4, 5, 6, 7, 7, 7, 7]);
      const base = store.keys.customer('test', c);
      const period = t.period;
      expect(await redis.scard(store.keys.members(base, 'calls', period))).toBe(3);
      expect(await redis.pfcount(store.keys.sketch(base, 'calls', period))).toBe(4);
      await store.flush();
      await redis.del(
        store.keys.counter(base, 'calls', period),
        store.keys.members(base, 'calls', period),
        store.keys.sketch(base, 'calls', period),
      );
      await rebuildFromLedger(store, clock.now());
      expect(await redis.hget(store.keys.counter(base, 'calls', period), 'u')).toBe('7');
      expect(await redis.scard(store.keys.members(base, 'calls', period))).toBe(3);
      expect(await redis.pfcount(store.keys.sketch(base, 'calls', period))).toBe(4);
    } finally {
      await f.close();
    }
  });
});

describe.skipIf(!services.redis)('a flusher in another process (Redis)', () => {
  it('finds the streams written to through their marks, without reading every stream', async () => {
    const f = await redisFixture();
    const { clock, redis, database } = f;
    const api = f.store();
    const worker = f.store();
    try {
      const customers = await knownCustomers(database.db, 20);
      await api.record(
        'test',
        customers.map((c) => event(c)),
        clock.now(),
      );
      // The first scheduled flush reads every stream; later ones follow the marks.
      expect(await worker.flush({ full: false })).toBe(20);
      await api.record(
        'test',
        customers.slice(0, 5).map((c) => event(c)),
        clock.now(),
      );
      await new Promise((r) => setTimeout(r, 50));
      expect(await redis.scard(api.keys.written)).toBeGreaterThan(0);
      expect(await worker.flush({ full: false })).toBe(5);
      expect(await redis.scard(api.keys.written)).toBe(0);
      const rows = await database.db
        .selectFrom('usage_events' as never)
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow();
      expect(Number(rows.n)).toBe(25);
    } finally {
      await f.close();
    }
  });
});

describe.skipIf(!services.redis)('stream entries of a script call (Redis)', () => {
  const ledgerRows = async (db: Awaited<ReturnType<typeof redisFixture>>['database']['db']) =>
    Number(
      (
        await db
          .selectFrom('usage_events' as never)
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    );

  it('appends the events counted by one call as one entry, in order, and flushes each once', async () => {
    const f = await redisFixture();
    const { clock, redis, database } = f;
    const store = f.store();
    try {
      const customers = await knownCustomers(database.db, 5);
      const events = Array.from({ length: 50 }, (_, i) => event(customers[i % 5]!));
      const answers = await store.record('test', events, clock.now());
      expect(answers.every((a) => a.accepted)).toBe(true);
      const stream = store.keys.streamOfSlot(0);
      const entries = (await redis.xrange(stream, '-', '+')) as Array<[string, string[]]>;
      expect(entries).toHaveLength(1);
      const fields = entries[0]![1];
      expect(fields.filter((_, i) => i % 2 === 0)).toEqual(Array(50).fill('e'));
      const keys = fields.filter((_, i) => i % 2 === 1).map((r) => r.split('\t')[3]);
      expect(keys).toEqual(events.map((e) => e.idempotencyKey));
      expect(await store.flush()).toBe(50);
      expect(await store.flush()).toBe(0);
      expect(await ledgerRows(database.db)).toBe(50);
      expect(await redis.xlen(stream)).toBe(0);
    } finally {
      await f.close();
    }
  });

  it('answers an event that fails inside the call with its own error and still records the rest', async () => {
    const f = await redisFixture();
    const { clock, redis, database } = f;
    const store = f.store();
    try {
      const [a, bad, c] = (await knownCustomers(database.db, 3)) as [string, string, string];
      // A counter key of the wrong type: that event's script step fails (WRONGTYPE).
      const badCounter = store.keys.counter(store.keys.customer('test', bad), 'calls', period);
      await redis.set(badCounter, 'not a hash');
      const events = [event(a), event(bad), event(c)];
      const calls = events.map((e) => store.record('test', [e], clock.now()));
      const settled = await Promise.allSettled(calls);
      expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(String((settled[1] as PromiseRejectedResult).reason)).toMatch(/WRONGTYPE/);
      await redis.del(badCounter);
      expect(await store.flush()).toBe(2);
      expect(await ledgerRows(database.db)).toBe(2);
      // Sent again (the client's retry): the two counted events replay their answers, count nothing.
      const again = await store.record('test', [events[0]!, events[2]!], clock.now());
      expect(again.map((x) => x.used)).toEqual([1, 1]);
      expect(await store.flush()).toBe(0);
      expect((await compareWithLedger(store, clock.now(), 'test')).mismatches).toEqual([]);
      expect(await redis.hget(store.keys.counter(store.keys.customer('test', a), 'calls', period), 'u')).toBe(
        '1',
      );
    } finally {
      await f.close();
    }
  });
});
