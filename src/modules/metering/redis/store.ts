/**
 * The Redis store: a Lua script does each event's check-and-consume, idempotency answer and append
 * to the stream atomically, the events of one event-loop turn in one call (CONSUME_MANY); the
 * flusher moves the stream into the Postgres ledger. Reads for decisions share read-only script
 * calls the same way. With a cluster client every call stays within one slot.
 */
import type { Redis } from 'ioredis';
import type { UsageReading } from '../../../domain/resolved.ts';
import type { CustomerSnapshot } from '../../../domain/types.ts';
import type { Clock } from '../../../platform/clock.ts';
import type { Db } from '../../../platform/db.ts';
import type { Logger } from '../../../platform/logger.ts';
import type { Metrics } from '../../../platform/metrics.ts';
import { slotOfKey } from '../../../platform/redis-slots.ts';
import type { UsageQuery } from '../../entitlements/engine.ts';
import type { LedgerCopier } from '../ledger/copy.ts';
import { ledgerHead } from '../ledger/lines.ts';
import { readingOf } from '../reading.ts';
import type {
  CommitAnswer,
  FlushOptions,
  HoldAnswer,
  HoldRequest,
  RebuildReport,
  Reservation,
  StoredPeriod,
  UsageAnswer,
  UsageEvent,
  UsageStore,
  UsageTerms,
  VerifyReport,
} from '../store.ts';
import { storedPeriod } from '../store.ts';
import { packTerms, type TermsLimits } from './args.ts';
import { CounterCache, type CounterCacheOptions, type CounterReply } from './counter-cache.ts';
import { CountersRebuilding, isCountersLost } from './counters-rebuilding.ts';
import { ensureGroup, LedgerFlusher } from './flusher.ts';
import { slotOf, UsageKeys } from './keys.ts';
import { rebuildFromLedger } from './rebuild.ts';
import { RedisReservations } from './reservations.ts';
import { guarded, type LuaScript, loadScripts, runScript, SCRIPTS, TickBatcher } from './scripts.ts';
import { compareWithLedger } from './verify.ts';
import { decodeAnswer } from './wire.ts';

export interface RedisStoreOptions extends TermsLimits {
  /**
   * Calls made together are sent as one script call per Redis Cluster slot instead of one in all.
   * Defaults to whether the client is a cluster client (a script may touch one slot there).
   */
  groupBySlot?: boolean;
  /** Writes the flusher's ledger rows with COPY (real PostgreSQL); without it, with inserts. */
  copier?: LedgerCopier | null;
  /** Where the flusher counts the records it dead-letters. */
  metrics?: Metrics | null;
  /** Cached counter readings for decisions, started by `start` (see counter-cache.ts); none without. */
  counterCache?: CounterCacheOptions | null;
}

export const DEFAULT_REDIS_OPTIONS: RedisStoreOptions = {
  idempotencyTtlMs: 8 * 86_400_000,
  retentionMs: 35 * 86_400_000,
  exactMembers: 100_000,
};

/** On a standalone Redis every event goes to this slot's stream (see `slotOf`). */
export const SHARED_STREAM_SLOT = 0;

/** One script call holds Redis for its whole run: these bound it (about a millisecond or two). */
const MAX_EVENTS_PER_CALL = 100;
const MAX_READS_PER_CALL = 200;
/**
 * One READ under way at a time: counter reads asked for meanwhile leave together when it returns.
 * After a quiet spell, when many cached readings have lapsed at once, that is one round trip per
 * reply instead of one per turn of the event loop (each costing Redis and this process a wake-up).
 */
const READS_IN_FLIGHT = 1;
/**
 * The same for consume calls: single events that arrive while a call is under way leave together
 * when it returns. Each call costs this process a write to Redis and Redis a wake-up; with single
 * events from 50 connections, alternating runs measured 8-17% less API CPU and 10-20% less Redis
 * CPU per event this way (docs/benchmarks.md). Full calls (a batch request) are not held back.
 */
const CONSUMES_IN_FLIGHT = 1;

/** One feature's counter as READ returns it: used, held, credit used, per-grant credit pairs. */
type ReadReply = CounterReply;

const NO_KEYS: string[] = [];

interface QueryKeys {
  environment: string;
  customerId: string;
  counter: string;
  credit: string;
  holds: string;
}

/** One event's part of a consume call (see CONSUME_MANY in lua.ts). */
export interface ConsumeCall {
  /** Counter, credit, idempotency and holds keys (and members, sketch for `unique`). */
  keys: string[];
  now: number;
  terms: string;
  value: number;
  member: string;
  head: string;
  /** The slot whose stream the event goes to. */
  slot: number;
}

/** A CONSUME_MANY call's keys and arguments: what the events share (contexts) is sent once. */
export function manyCall(group: ConsumeCall[], stream: string): [string[], Array<string | number>] {
  const keys: string[] = [stream];
  const contexts: Array<string | number> = [];
  const events: Array<string | number> = [];
  const known = new Map<string, number>();
  let lastNow = Number.NaN;
  let lastTerms = '';
  let last = 0;
  for (const call of group) {
    if (call.now !== lastNow || call.terms !== lastTerms) {
      const id = `${call.now}|${call.terms}`;
      let context = known.get(id);
      if (context === undefined) {
        contexts.push(call.now, call.terms);
        context = contexts.length / 2;
        known.set(id, context);
      }
      lastNow = call.now;
      lastTerms = call.terms;
      last = context;
    }
    for (const key of call.keys) keys.push(key);
    events.push(last, call.value, call.member, call.head);
  }
  return [keys, [group.length, contexts.length / 2, ...contexts, ...events]];
}

/** Re-register a slot this often, so a Redis that lost its data gets its slot list back. */
const REGISTER_EVERY_MS = 60_000;

export class RedisUsageStore implements UsageStore {
  readonly kind = 'redis' as const;
  readonly keys: UsageKeys;
  readonly flusher: LedgerFlusher;
  private readonly reservations: RedisReservations;
  private readonly registered = new Map<number, number>();
  private readonly slots = new Map<string, number>();
  private readonly packed = new WeakMap<UsageTerms, string>();
  /** Cached counter readings for decisions (see counter-cache.ts); null until `startCounterCache`. */
  counters: CounterCache | null = null;
  /** Called when a script found the epoch key gone (Redis lost its data). */
  onCountersLost: (() => void) | null = null;
  /** Keys every script call ends with: the epoch key once guarded (see `guard`). */
  private guardKeys: readonly string[] = NO_KEYS;

  constructor(
    readonly redis: Redis,
    readonly db: Db,
    prefix: string,
    private readonly clock: Clock,
    private readonly logger: Logger,
    readonly options: RedisStoreOptions = DEFAULT_REDIS_OPTIONS,
  ) {
    this.keys = new UsageKeys(prefix);
    this.flusher = new LedgerFlusher(
      redis,
      db,
      this.keys,
      clock,
      logger,
      options.copier ?? null,
      options.metrics ?? null,
    );
    this.reservations = new RedisReservations(this);
    this.groupBySlot = options.groupBySlot ?? redis.isCluster;
  }

  /**
   * From now on every script also takes the epoch key and refuses to run without it (Redis lost
   * its data; see counter-recovery.ts, which turns this on once the epoch is set). Not on a
   * cluster: the epoch key is in another slot than a customer's keys.
   */
  guard(): void {
    if (!this.redis.isCluster) this.guardKeys = [this.keys.epoch];
  }

  /** A script as this store runs it: its guarded twin when the store is guarded. */
  private script(lua: LuaScript): LuaScript {
    return this.guardKeys.length > 0 ? guarded(lua) : lua;
  }

  private withGuard(keys: readonly string[]): readonly string[] {
    return this.guardKeys.length > 0 ? [...keys, ...this.guardKeys] : keys;
  }

  /** A script's failure as callers see it: the epoch key gone is a 503 (and starts a rebuild). */
  private failure(err: unknown): unknown {
    if (!isCountersLost(err)) return err;
    this.onCountersLost?.();
    return new CountersRebuilding();
  }

  private readonly groupBySlot: boolean;

  /** Events recorded in the same turn of the event loop leave in one script call (per slot). */
  private readonly consumer = new TickBatcher<ConsumeCall, unknown>(
    (calls) =>
      this.perSlot(
        calls,
        (call) => call.slot,
        async (group) => {
          // A single event too: CONSUME_MANY counts it as the one-event script did.
          const [keys, args] = manyCall(group, this.keys.streamOfSlot(group[0]!.slot));
          for (const key of this.guardKeys) keys.push(key);
          return (await runScript(this.redis, this.script(SCRIPTS.consumeMany), keys, args)) as unknown[];
        },
      )
        // Also after a failure: a script that failed part-way may have counted some events.
        .finally(() => this.wrote(calls))
        .then(
          (answers) => {
            this.markWritten(calls.map((call) => call.slot));
            return answers;
          },
          (err: unknown) => {
            throw this.failure(err);
          },
        ),
    MAX_EVENTS_PER_CALL,
    CONSUMES_IN_FLIGHT,
  );

  /** Counter reads for decisions made together share one READ call (per slot); see READS_IN_FLIGHT. */
  private readonly reader = new TickBatcher<string[], ReadReply[]>(
    (keysets) =>
      this.perSlot(
        keysets,
        (keys) => slotOfKey(keys[0]!),
        async (group) => {
          const keys = group.flat();
          const now = [this.clock.now().getTime()];
          const read = this.script(SCRIPTS.read);
          const sent = this.withGuard(keys);
          const tracked = this.counters?.begin(keys) ?? null;
          let reply: ReadReply[] | null = null;
          if (tracked) {
            try {
              reply = (await runScript(tracked.connection, read, sent, now)) as ReadReply[];
            } catch (err) {
              if (isCountersLost(err)) throw this.failure(err);
              // The tracking connection went away mid-read: read on the shared one (not cached).
              reply = null;
            } finally {
              this.counters?.settle(tracked, reply);
            }
          }
          try {
            reply ??= (await runScript(this.redis, read, sent, now)) as ReadReply[];
          } catch (err) {
            throw this.failure(err);
          }
          let next = 0;
          return group.map((keys) => {
            const part = reply.slice(next, next + keys.length / 3);
            next += keys.length / 3;
            return part;
          });
        },
      ),
    MAX_READS_PER_CALL,
    READS_IN_FLIGHT,
  );

  /**
   * Caches counter readings for decisions, kept true by Redis's invalidations (standalone Redis
   * only: on a cluster every read goes to Redis).
   */
  async startCounterCache(options: CounterCacheOptions): Promise<void> {
    if (this.groupBySlot || options.maxEntries === 0 || this.counters) return;
    this.counters = new CounterCache(this.redis, this.clock, this.logger, options);
    await this.counters.start();
  }

  stopCounterCache(): void {
    this.counters?.stop();
    this.counters = null;
  }

  /** Loads the scripts (the hot path is then a bare EVALSHA) and starts the counter cache. */
  async start(): Promise<void> {
    await loadScripts(this.redis);
    if (this.options.counterCache) await this.startCounterCache(this.options.counterCache);
  }

  stop(): void {
    this.stopCounterCache();
  }

  async rebuild(now: Date): Promise<RebuildReport> {
    await loadScripts(this.redis);
    return rebuildFromLedger(this, now);
  }

  verify(now: Date, environment?: string): Promise<VerifyReport> {
    return compareWithLedger(this, now, environment);
  }

  /** Appends the record to the stream the API would append the customer's events to now. */
  async requeue(environment: string, customerId: string, record: string): Promise<void> {
    await this.registerSlots(environment, [customerId]);
    await this.redis.xadd(this.keys.streamOfSlot(this.slotOf(environment, customerId)), '*', 'e', record);
  }

  /** Runs a script that changes counters; the cached readings of its keys are dropped after it. */
  async write(
    lua: LuaScript,
    keys: readonly string[],
    args: ReadonlyArray<string | number>,
  ): Promise<unknown> {
    try {
      return await runScript(this.redis, this.script(lua), this.withGuard(keys), args);
    } catch (err) {
      throw this.failure(err);
    } finally {
      this.counters?.written(keys);
    }
  }

  /**
   * After Redis lost its data: slots are registered again on their next use (list and consumer
   * group), and the streams this process used get their groups back now.
   */
  async restoreStreams(): Promise<void> {
    const slots = new Set(this.registered.keys());
    if (!this.groupBySlot) slots.add(SHARED_STREAM_SLOT);
    this.registered.clear();
    if (slots.size === 0) return;
    await Promise.all([
      this.redis.sadd(this.keys.slots, ...slots),
      ...[...slots].map((slot) => ensureGroup(this.redis, this.keys.streamOfSlot(slot))),
    ]);
  }

  /** Slots are registered again on their next use (Redis may have lost the list and the groups). */
  forgetRegisteredSlots(): void {
    this.registered.clear();
  }

  /** This process's writes drop the cached readings they change (read-your-writes on this node). */
  private wrote(calls: ConsumeCall[]): void {
    const counters = this.counters;
    if (counters) for (const call of calls) counters.written(call.keys);
  }

  /**
   * Tells flushers in other processes which streams have new entries (a hint: they also read every
   * stream now and then), after the scripts appended to them.
   */
  private markWritten(slots: number[]): void {
    this.redis.sadd(this.keys.written, ...new Set(slots)).catch((err: unknown) => {
      this.logger.warn({ err }, 'could not mark usage streams as written');
    });
  }

  /** Runs `items` in groups (one group, or one per Redis Cluster slot) and answers them in order. */
  private async perSlot<I, O>(
    items: I[],
    slotOfItem: (item: I) => number,
    runGroup: (group: I[]) => Promise<O[]>,
  ): Promise<O[]> {
    if (!this.groupBySlot) return runGroup(items);
    const groups = new Map<number, number[]>();
    items.forEach((item, i) => {
      const slot = slotOfItem(item);
      const group = groups.get(slot);
      if (group) group.push(i);
      else groups.set(slot, [i]);
    });
    const out: O[] = new Array(items.length);
    await Promise.all(
      [...groups.values()].map(async (indexes) => {
        const answers = await runGroup(indexes.map((i) => items[i]!));
        indexes.forEach((i, j) => {
          out[i] = answers[j]!;
        });
      }),
    );
    return out;
  }

  async record(environment: string, events: UsageEvent[], now: Date): Promise<UsageAnswer[]> {
    await this.registerSlots(
      environment,
      events.map((e) => e.customerId),
    );
    const at = now.getTime();
    const calls = events.map((event): ConsumeCall => {
      const base = this.keys.customer(environment, event.customerId);
      const { feature, terms } = event;
      const period = terms.period;
      const keys = [
        this.keys.counter(base, feature, period),
        this.keys.credit(base, feature),
        this.keys.idempotency(base, event.idempotencyKey),
        this.keys.holds(base, feature, period),
      ];
      if (terms.aggregation === 'unique')
        keys.push(this.keys.members(base, feature, period), this.keys.sketch(base, feature, period));
      return {
        keys,
        now: at,
        terms: this.termsArg(terms),
        value: event.value,
        member: event.member ?? '',
        head: this.head(environment, event, null),
        slot: this.slotOf(environment, event.customerId),
      };
    });
    const replies = await this.consumer.callAll(calls);
    return replies.map((raw) => {
      // One event that failed inside CONSUME_MANY (the others of the call were still counted).
      if (raw instanceof Error) throw raw;
      return decodeAnswer(String(raw));
    });
  }

  /** The consume script's terms argument (see lua.ts), built once per terms object. */
  termsArg(terms: UsageTerms): string {
    let arg = this.packed.get(terms);
    if (arg === undefined) {
      arg = packTerms(terms, this.options);
      this.packed.set(terms, arg);
    }
    return arg;
  }

  async read(environment: string, snapshot: CustomerSnapshot, queries: UsageQuery[]) {
    const readings = new Map<string, UsageReading>();
    if (queries.length === 0) return readings;
    const now = this.clock.now();
    const counters = this.counters;
    const replies: Array<ReadReply | undefined> = new Array(queries.length);
    // Made only when a counter is not cached (most checks find theirs).
    let missing: number[] | null = null;
    let keys: string[] = NO_KEYS;
    for (let i = 0; i < queries.length; i++) {
      const q = queries[i]!;
      const k = this.queryKeys(environment, snapshot.customerId, q);
      const cached = counters?.get(k.counter);
      if (cached) replies[i] = cached;
      else {
        if (missing === null) {
          missing = [];
          keys = [];
        }
        missing.push(i);
        keys.push(k.counter, k.credit, k.holds);
      }
    }
    if (missing !== null) {
      const read = await this.reader.call(keys);
      for (let j = 0; j < missing.length; j++) replies[missing[j]!] = read[j];
    }
    for (let i = 0; i < queries.length; i++) {
      const reply = replies[i]!;
      readings.set(queries[i]!.feature, this.readingOf(snapshot, queries[i]!.feature, reply, now));
    }
    return readings;
  }

  /**
   * A query's keys, made once per query object: the decision engine asks with the same query
   * objects until the customer's snapshot or the usage period changes, so a check builds no key.
   */
  private readonly keysOfQuery = new WeakMap<UsageQuery, QueryKeys>();

  private queryKeys(environment: string, customerId: string, q: UsageQuery): QueryKeys {
    const known = this.keysOfQuery.get(q);
    // Keyed by the query object; the customer is checked too, in case one query is asked for two.
    if (known !== undefined && known.customerId === customerId && known.environment === environment)
      return known;
    const base = this.keys.customer(environment, customerId);
    const period = storedPeriod(q.period);
    const made = {
      environment,
      customerId,
      counter: this.keys.counter(base, q.feature, period),
      credit: this.keys.credit(base, q.feature),
      holds: this.keys.holds(base, q.feature, period),
    };
    this.keysOfQuery.set(q, made);
    return made;
  }

  /**
   * With no credit grants and no live holds a reading depends on the counter's reply alone, so it
   * is made once per reply: a reply the counter cache hands out again (the counter did not change)
   * gives the very same reading, which lets the decision engine reuse what it made of it.
   */
  private readonly readingOfReply = new WeakMap<ReadReply, UsageReading>();

  private readingOf(snapshot: CustomerSnapshot, feature: string, reply: ReadReply, now: Date): UsageReading {
    const [used, held, credit, pairs] = reply;
    const plain = snapshot.grants.length === 0 && Number(held) <= 0;
    if (plain) {
      const known = this.readingOfReply.get(reply);
      if (known !== undefined) return known;
    }
    const usage: Record<string, number> = {};
    for (let j = 0; j + 1 < pairs.length; j += 2) usage[pairs[j]!] = Number(pairs[j + 1]);
    const state = { used: Number(used), held: Number(held), overage: 0, creditUsed: Number(credit) };
    const reading = readingOf(snapshot, feature, state, usage, now);
    if (plain) this.readingOfReply.set(reply, reading);
    return reading;
  }

  hold(environment: string, request: HoldRequest, now: Date): Promise<HoldAnswer> {
    return this.reservations.hold(environment, request, now);
  }

  commit(
    environment: string,
    reservation: Reservation,
    amount: number,
    terms: UsageTerms,
    now: Date,
  ): Promise<CommitAnswer> {
    return this.reservations.commit(environment, reservation, amount, terms, now);
  }

  release(environment: string, reservation: Reservation, now: Date): Promise<Reservation> {
    return this.reservations.release(environment, reservation, now);
  }

  findReservation(environment: string, id: string): Promise<Reservation | null> {
    return this.reservations.find(environment, id);
  }

  sweepExpired(now: Date): Promise<number> {
    return this.reservations.sweep(now);
  }

  flush(options?: FlushOptions): Promise<number> {
    return this.flusher.flush(options);
  }

  /**
   * Counter keys expire a while after their period ends (never for `reset: none`). A relative TTL
   * from the application's clock, so Redis's own clock never has to agree with it.
   */
  ttlOf(period: StoredPeriod, now: Date): number {
    if (period.end === null) return 0;
    return Math.max(86_400_000, period.end.getTime() + this.options.retentionMs - now.getTime());
  }

  periodArgs(period: StoredPeriod): [string | number, number] {
    return [period.end?.getTime() ?? '', period.start.getTime()];
  }

  /** The ledger fields of an event that the script passes through to the stream. */
  head(environment: string, event: UsageEvent, reservationId: string | null): string {
    return ledgerHead(environment, event, reservationId);
  }

  /**
   * Before a script first appends to a slot's stream, the slot joins the flusher's list and the
   * stream gets its consumer group, so no appended event can go unseen.
   */
  async registerSlots(environment: string, customerIds: string[]): Promise<void> {
    const now = this.clock.now().getTime();
    const fresh: number[] = [];
    for (const customerId of customerIds) {
      const slot = this.slotOf(environment, customerId);
      this.flusher.dirty.add(slot);
      const at = this.registered.get(slot);
      if (at === undefined || now - at > REGISTER_EVERY_MS) {
        this.registered.set(slot, now);
        fresh.push(slot);
      }
    }
    if (fresh.length === 0) return;
    try {
      await Promise.all([
        this.redis.sadd(this.keys.slots, ...fresh),
        ...fresh.map((slot) => ensureGroup(this.redis, this.keys.streamOfSlot(slot))),
      ]);
    } catch (err) {
      for (const slot of fresh) this.registered.delete(slot);
      throw err;
    }
  }

  /**
   * The slot whose stream a customer's events go to: the customer's own Redis Cluster slot when
   * calls are grouped per slot (a script may touch one slot there), else one stream for all, so
   * the flusher reads entries in large batches instead of one or two from each of thousands of
   * streams.
   */
  slotOf(environment: string, customerId: string): number {
    if (!this.groupBySlot) return SHARED_STREAM_SLOT;
    const tag = `${environment}:${customerId}`;
    let slot = this.slots.get(tag);
    if (slot === undefined) {
      if (this.slots.size > 200_000) this.slots.clear();
      slot = slotOf(tag);
      this.slots.set(tag, slot);
    }
    return slot;
  }
}
