import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished, vi } from 'vitest';
import { runUsageCommand } from '../../src/modules/metering/cli.ts';
import { LedgerCopier } from '../../src/modules/metering/ledger/copy.ts';
import { FLUSH_GROUP } from '../../src/modules/metering/redis/keys.ts';
import { loadScripts } from '../../src/modules/metering/redis/scripts.ts';
import { DEFAULT_REDIS_OPTIONS, RedisUsageStore } from '../../src/modules/metering/redis/store.ts';
import { ManualClock } from '../../src/platform/clock.ts';
import type { Database } from '../../src/platform/db.ts';
import { createLogger } from '../../src/platform/logger.ts';
import { Metrics } from '../../src/platform/metrics.ts';
import { createTestApp, createTestDatabase, services } from '../helpers/harness.ts';
import { freePort } from '../helpers/processes.ts';
import { customer, event } from './metering-fixtures.ts';

/**
 * One record the ledger refuses (a NUL byte PostgreSQL text cannot hold, a customer this database
 * does not have) is set aside in `usage_dead_letters`; every other event of the same read, and of
 * the same stream entry, reaches the ledger, and the stream is left empty.
 */
describe.skipIf(!services.redis)('usage records the ledger refuses', () => {
  let database: Database;
  let drop: () => Promise<void>;
  let redis: Redis;
  const clock = new ManualClock('2026-01-15T12:00:00Z');
  const opened: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    ({ database, drop } = await createTestDatabase());
    redis = new Redis(inject('redisUrl')!);
    await loadScripts(redis);
  });
  afterAll(async () => {
    for (const close of opened) await close();
    redis.disconnect();
    await drop();
  });

  function open(copier: LedgerCopier | null = null) {
    const prefix = `tessera-test:${randomBytes(6).toString('hex')}:`;
    const metrics = new Metrics();
    const store = new RedisUsageStore(redis, database.db, prefix, clock, createLogger('silent'), {
      ...DEFAULT_REDIS_OPTIONS,
      copier,
      metrics,
    });
    opened.push(async () => {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length) await redis.del(...keys);
    });
    return { store, metrics };
  }

  async function knownCustomers(n: number): Promise<string[]> {
    const ids = Array.from({ length: n }, () => customer());
    await sql`INSERT INTO customers (environment, customer_id) SELECT 'test', unnest(${ids}::text[])`.execute(
      database.db,
    );
    return ids;
  }

  async function ledgerKeys(customers: string[]): Promise<string[]> {
    const { rows } = await sql<{ idempotency_key: string }>`
      SELECT idempotency_key FROM usage_events WHERE customer_id = ANY(${customers}::text[])
      ORDER BY idempotency_key`.execute(database.db);
    return rows.map((r) => r.idempotency_key);
  }

  async function deadLetters(customers: string[]) {
    const { rows } = await sql<{
      customer_id: string;
      reason: string;
      record: string;
      detail: string | null;
    }>`
      SELECT customer_id, reason, record, detail FROM usage_dead_letters
      WHERE customer_id = ANY(${customers}::text[]) ORDER BY id`.execute(database.db);
    return rows;
  }

  async function streamLeft(store: RedisUsageStore): Promise<{ length: number; pending: number }> {
    const stream = store.keys.streamOfSlot(0);
    const pending = (await redis.call('XPENDING', stream, FLUSH_GROUP)) as [number];
    return { length: await redis.xlen(stream), pending: Number(pending[0]) };
  }

  async function deadLetterMetric(metrics: Metrics): Promise<Record<string, number>> {
    const metric = await metrics.registry.getSingleMetric('tessera_usage_dead_letters_total')?.get();
    return Object.fromEntries((metric?.values ?? []).map((v) => [String(v.labels.reason), v.value]));
  }

  for (const way of ['COPY', 'insert'] as const) {
    it(`writes every other event of the entry when PostgreSQL refuses one (${way}), and dead-letters that one with its reason`, async () => {
      const { store, metrics } = open(way === 'COPY' ? new LedgerCopier(database.pool) : null);
      const customers = await knownCustomers(3);
      const events = Array.from({ length: 60 }, (_, i) =>
        event(customers[i % 3]!, { idempotencyKey: `${way}-${i}` }),
      );
      // A NUL byte in the key: Redis counts it; PostgreSQL text cannot hold it.
      events.splice(17, 0, event(customers[1]!, { idempotencyKey: 'p\u0000' }));
      const answers = await store.record('test', events, clock.now());
      expect(answers.every((a) => a.accepted)).toBe(true);

      expect(await store.flush()).toBe(60);
      expect(await ledgerKeys(customers)).toEqual(
        events
          .map((e) => e.idempotencyKey)
          .filter((k) => k !== 'p\u0000')
          .sort(),
      );
      const dead = await deadLetters(customers);
      expect(dead).toHaveLength(1);
      expect(dead[0]).toMatchObject({ customer_id: customers[1], reason: 'ledger_refused' });
      expect(dead[0]!.detail).toMatch(/0x00|invalid byte sequence/);
      // The record is kept whole (as a JSON string: text cannot hold its NUL).
      expect(JSON.parse(dead[0]!.record)).toContain('p\u0000');
      expect(await streamLeft(store)).toEqual({ length: 0, pending: 0 });
      expect(await deadLetterMetric(metrics)).toEqual({ ledger_refused: 1 });
    });
  }

  it('dead-letters the events of a customer this database does not have, and writes none of their rows', async () => {
    const { store, metrics } = open(new LedgerCopier(database.pool));
    const [known] = await knownCustomers(1);
    const stranger = customer();
    const events = [
      event(known!, { idempotencyKey: 'a' }),
      event(stranger, { idempotencyKey: 'b' }),
      event(known!, { idempotencyKey: 'c' }),
      event(stranger, { idempotencyKey: 'd' }),
    ];
    await store.record('test', events, clock.now());
    // Another environment of the same customer id is another customer.
    await store.record('live', [event(known!, { idempotencyKey: 'e' })], clock.now());
    expect(await store.flush()).toBe(2);
    expect(await ledgerKeys([known!, stranger])).toEqual(['a', 'c']);
    const dead = await deadLetters([known!, stranger]);
    expect(dead.map((d) => [d.customer_id, d.reason])).toEqual([
      [stranger, 'unknown_customer'],
      [stranger, 'unknown_customer'],
      [known, 'unknown_customer'],
    ]);
    expect(await streamLeft(store)).toEqual({ length: 0, pending: 0 });
    expect(await deadLetterMetric(metrics)).toEqual({ unknown_customer: 3 });
  });

  it('writes nothing twice when the same entries are settled again (a crash before the acknowledgement)', async () => {
    const { store, metrics } = open(new LedgerCopier(database.pool));
    const customers = await knownCustomers(2);
    const events = [
      event(customers[0]!, { idempotencyKey: 'x1' }),
      event(customers[1]!, { idempotencyKey: 'x\u00002' }),
      event(customers[1]!, { idempotencyKey: 'x3' }),
    ];
    await store.record('test', events, clock.now());
    const stream = store.keys.streamOfSlot(0);
    const entries = (await redis.xrange(stream, '-', '+')) as Array<[string, string[]]>;
    // The same entries twice: what a flusher that crashed after writing, before acknowledging,
    // leaves to the next one.
    expect(await store.flusher.settle([[stream, entries]])).toBe(2);
    expect(await store.flusher.settle([[stream, entries]])).toBe(2);
    expect(await ledgerKeys(customers)).toEqual(['x1', 'x3']);
    expect(await deadLetters(customers)).toHaveLength(1);
    expect(await deadLetterMetric(metrics)).toEqual({ ledger_refused: 1 });
  });

  it('dead-letters nothing when the ledger cannot be reached: the entries stay pending for the next flush', async () => {
    const unreachable = new pg.Pool({
      connectionString: `postgres://postgres@127.0.0.1:${await freePort()}/none`,
      connectionTimeoutMillis: 2_000,
    });
    unreachable.on('error', () => {});
    opened.push(() => unreachable.end());
    const { store } = open(new LedgerCopier(unreachable));
    const customers = await knownCustomers(1);
    await store.record(
      'test',
      [event(customers[0]!, { idempotencyKey: 'u1' }), event(customers[0]!, { idempotencyKey: 'u2' })],
      clock.now(),
    );
    await expect(store.flush()).rejects.toThrow();
    expect(await deadLetters(customers)).toEqual([]);
    expect(await streamLeft(store)).toEqual({ length: 1, pending: 1 });
    // The database is back: the pending entry is claimed and written.
    const back = new RedisUsageStore(redis, database.db, store.keys.prefix, clock, createLogger('silent'), {
      ...DEFAULT_REDIS_OPTIONS,
      copier: new LedgerCopier(database.pool),
    });
    expect(await back.flush({ claimIdleMs: 0 })).toBe(2);
    expect(await ledgerKeys(customers)).toEqual(['u1', 'u2']);
  });
});

describe.skipIf(!services.redis)('tessera usage dead-letters', () => {
  /** Runs the verb as the CLI does, and answers its exit code and what it printed. */
  async function usage(runtime: Parameters<typeof runUsageCommand>[0], ...args: string[]) {
    let out = '';
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out += String(chunk);
      return true;
    });
    try {
      const code = await runUsageCommand(runtime, args[0], args.slice(1));
      return { code, out };
    } finally {
      write.mockRestore();
    }
  }

  it('lists dead letters, replays one whose customer now exists, and discards one', async () => {
    const app = await createTestApp({ redis: true });
    onTestFinished(() => app.close());
    const { runtime, clock } = app;
    const store = runtime.metering.store as RedisUsageStore;
    await store.record(
      'test',
      [event('late', { idempotencyKey: 'late-1' }), event('gone', { idempotencyKey: 'gone-1' })],
      clock.now(),
    );
    await store.record('live', [event('other', { idempotencyKey: 'other-1' })], clock.now());
    expect(await runtime.metering.flush()).toBe(0);

    const listed = await usage(runtime, 'dead-letters', '--env', 'test');
    expect(listed.code).toBe(0);
    const letters = listed.out
      .trim()
      .split('\n')
      .slice(0, -1)
      .map((l) => JSON.parse(l) as { id: string; customerId: string; reason: string; record: string });
    expect(letters.map((l) => [l.customerId, l.reason])).toEqual([
      ['late', 'unknown_customer'],
      ['gone', 'unknown_customer'],
    ]);
    expect(listed.out).toMatch(/2 dead letters\n$/);
    expect(letters[0]!.record).toContain('late-1');

    // The customer is created here after all: its event is replayed into the ledger.
    expect((await app.json('PUT', '/v1/customers/late', { name: 'Late' })).status).toBe(201);
    const replayed = await usage(runtime, 'dead-letters', 'replay', letters[0]!.id);
    expect(replayed).toMatchObject({ code: 0, out: expect.stringContaining('1 event(s) written') });
    const ledger = await sql<{ idempotency_key: string }>`
      SELECT idempotency_key FROM usage_events WHERE environment = 'test'`.execute(runtime.deps.db);
    expect(ledger.rows.map((r) => r.idempotency_key)).toEqual(['late-1']);
    // Replaying one still refused says so and keeps it.
    const again = await usage(runtime, 'dead-letters', 'replay', letters[1]!.id);
    expect(again).toMatchObject({ code: 1, out: expect.stringContaining('refused again') });

    const left = await usage(runtime, 'dead-letters');
    expect(left.out).toMatch(/2 dead letters\n$/);
    const gone = left.out
      .split('\n')
      .filter((l) => l.includes('gone-1'))
      .map((l) => JSON.parse(l) as { id: string })[0]!;
    expect(await usage(runtime, 'dead-letters', 'discard', gone.id)).toMatchObject({ code: 0 });
    expect(await usage(runtime, 'dead-letters', 'discard', gone.id)).toMatchObject({ code: 1 });
    expect((await usage(runtime, 'dead-letters')).out).toMatch(
      /^\{.*"customerId":"other".*\n1 dead letters\n$/s,
    );
  });
});
