/**
 * Counter readings for decisions, cached per process and kept true by Redis itself: the reads go
 * over a connection with server-assisted client-side caching on (`CLIENT TRACKING ... REDIRECT`),
 * so Redis remembers which keys this process read and, the moment any client (a usage event, a
 * hold, a rebuild, a flush, an expiry) changes one of them, sends its name on the
 * `__redis__:invalidate` channel to this process's subscriber connection, which drops the entry.
 * A counter that changes rarely against how often it is checked (seats, storage, a monthly quota
 * checked on page loads) is then answered with no round trip.
 *
 * What keeps a stale reading out:
 * - A read races the invalidations of its own keys (they come on another connection): a key
 *   invalidated while a read of it is in flight is not cached from that read.
 * - Writes made by this process drop their entries as soon as their reply arrives, so a check on
 *   the node that recorded usage sees it at once (read-your-writes), whatever the subscriber's
 *   timing; other nodes see it when Redis's invalidation reaches them, sent in the same turn of
 *   Redis's event loop as the writer's reply.
 * - Either connection closing clears the cache and stops caching until both are fresh again and
 *   tracking is on (Redis forgets tracking with the connection; it cannot tell a RESP2 client
 *   that its redirect went away, so the two are recreated together).
 * - A reading with live holds is not cached (holds lapse with time, without a write).
 * - Entries are also dropped after `maxAgeMs`, a bound if all else failed, and the oldest go first
 *   past `maxEntries`.
 * Standalone Redis only: on a cluster each node tracks its own keys (not wired here).
 */
import type { Redis } from 'ioredis';
import type { Clock } from '../../../platform/clock.ts';
import type { Logger } from '../../../platform/logger.ts';
import { Tally } from '../../../platform/metrics.ts';

/** One feature's counter as the READ script returns it: used, live held, credit used, grant pairs. */
export type CounterReply = [string, string, string, string[]];

interface Entry {
  reply: CounterReply;
  /** The credit and holds keys the reading also came from. */
  credit: string;
  holds: string;
  at: number;
}

export interface CounterCacheOptions {
  maxEntries: number;
  maxAgeMs: number;
  /** Wait before setting up again after a connection closed or set-up failed. */
  retryMs?: number;
  /** Where hits and misses are counted (the process's metrics); counted on their own otherwise. */
  reads?: { hit: Tally; miss: Tally };
}

const CHANNEL = '__redis__:invalidate';

/** What `begin` hands back: the connection to read on, and the epoch the reply must still be in. */
export interface TrackedRead {
  connection: Redis;
  epoch: number;
  keys: string[];
}

export class CounterCache {
  private readonly entries = new Map<string, Entry>();
  /** Credit and holds keys -> the counter key of the entry they belong to. */
  private readonly owners = new Map<string, string>();
  /** Keys being read right now (count of reads), and those of them invalidated meanwhile. */
  private readonly inflight = new Map<string, number>();
  private readonly dirty = new Set<string>();
  private epoch = 0;
  private reader: Redis | null = null;
  private subscriber: Redis | null = null;
  private active = false;
  private stopped = false;
  private retry: NodeJS.Timeout | null = null;
  private readonly reads: { hit: Tally; miss: Tally };
  /** Keys Redis said changed (a FLUSHDB counts one). */
  invalidations = 0;

  constructor(
    private readonly redis: Redis,
    /** Entries' ages are read on it (tests move a ManualClock instead of waiting). */
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly options: CounterCacheOptions,
  ) {
    this.reads = options.reads ?? {
      hit: new Tally({ outcome: 'hit' }),
      miss: new Tally({ outcome: 'miss' }),
    };
  }

  get hits(): number {
    return this.reads.hit.count;
  }

  get misses(): number {
    return this.reads.miss.count;
  }

  /** True while readings are being cached (both connections up and tracking on). */
  get tracking(): boolean {
    return this.active;
  }

  /** The tracked reads' connection while tracking (null otherwise). */
  get connection(): Redis | null {
    return this.active ? this.reader : null;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Sets up the two connections; if Redis refuses, keeps trying in the background. */
  async start(): Promise<void> {
    this.stopped = false;
    await this.arm();
  }

  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.teardown();
  }

  private async arm(): Promise<void> {
    this.teardown();
    const epoch = this.epoch;
    // Fresh connections that do not reconnect on their own: a reconnected one would have lost
    // its tracking (or its redirect target) without telling us.
    const options = {
      retryStrategy: () => null,
      enableOfflineQueue: true,
      autoResubscribe: false,
      connectionName: 'tessera:counter-cache',
    };
    // RESP2 for the subscriber: Redis sends a RESP3 redirect target an `invalidate` push, which the
    // client library does not surface, and a RESP2 one a message on the channel, which it does.
    const subscriber = this.redis.duplicate({ ...options, protocol: 2 });
    // No auto-pipelining: reads already leave as one READ call per turn of the event loop
    // (TickBatcher), and with it every READ built an ioredis pipeline object that V8 kept past a
    // young collection. In the check benchmark that took the old generation's growth from 0.15 to
    // 1.1 MB per scavenge, and scavenges from 1-2 ms to 8-10 ms (docs/benchmarks.md).
    const reader = this.redis.duplicate({ ...options, enableAutoPipelining: false });
    this.subscriber = subscriber;
    this.reader = reader;
    for (const connection of [subscriber, reader]) {
      connection.on('error', () => {});
      connection.on('close', () => this.lost(epoch));
    }
    subscriber.on('messageBuffer', (_channel: Buffer, payload: unknown) => this.invalidated(payload));
    try {
      // The id must be asked before subscribing: a subscribed RESP2 connection runs no CLIENT.
      const id = await subscriber.client('ID');
      await subscriber.subscribe(CHANNEL);
      await reader.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', String(id));
      if (epoch !== this.epoch || this.stopped) return;
      this.active = true;
    } catch (err) {
      if (epoch !== this.epoch || this.stopped) return;
      this.logger.warn({ err }, 'counter cache: could not turn Redis tracking on; reading without it');
      this.lost(epoch);
    }
  }

  /** A connection of set-up `epoch` closed: forget everything and set up again after a pause. */
  private lost(epoch: number): void {
    if (epoch !== this.epoch) return;
    this.teardown();
    if (this.stopped || this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = null;
      void this.arm();
    }, this.options.retryMs ?? 1_000);
    this.retry.unref();
  }

  private teardown(): void {
    this.epoch += 1;
    this.active = false;
    this.entries.clear();
    this.owners.clear();
    // Reads in flight stay counted in `inflight` and settle against an older epoch: not cached.
    const { reader, subscriber } = this;
    this.reader = null;
    this.subscriber = null;
    reader?.disconnect();
    subscriber?.disconnect();
  }

  /** A cached reading of the counter, or undefined (then read it through `begin`/`settle`). */
  get(counter: string): CounterReply | undefined {
    const entry = this.entries.get(counter);
    if (entry === undefined) {
      this.reads.miss.inc();
      return undefined;
    }
    if (this.clock.now().getTime() - entry.at > this.options.maxAgeMs) {
      // Kept (but not handed out) until it is read again: see `store`.
      this.reads.miss.inc();
      return undefined;
    }
    this.reads.hit.inc();
    return entry.reply;
  }

  /**
   * Starts a tracked read of `keys` (counter, credit, holds per feature); null when the cache is
   * not tracking (read on the shared connection then, and cache nothing).
   */
  begin(keys: string[]): TrackedRead | null {
    if (!this.active || this.reader === null) return null;
    for (const key of keys) this.inflight.set(key, (this.inflight.get(key) ?? 0) + 1);
    return { connection: this.reader, epoch: this.epoch, keys };
  }

  /**
   * Ends a tracked read; with `replies` (one per counter, in order), caches what is still true. A
   * reply equal to the cached one it refreshes is replaced in `replies` by that cached object.
   */
  settle(read: TrackedRead, replies: CounterReply[] | null): void {
    const { keys } = read;
    if (replies !== null && read.epoch === this.epoch && this.active) {
      const now = this.clock.now().getTime();
      for (let i = 0; i + 2 < keys.length; i += 3) {
        const counter = keys[i]!;
        const credit = keys[i + 1]!;
        const holds = keys[i + 2]!;
        const reply = replies[i / 3];
        if (reply === undefined || reply[1] !== '0') continue;
        if (this.dirty.has(counter) || this.dirty.has(credit) || this.dirty.has(holds)) continue;
        // The caller reads the replies on: an unchanged one becomes the object already handed out.
        replies[i / 3] = this.store(counter, credit, holds, reply, now);
      }
    }
    for (const key of keys) {
      const left = (this.inflight.get(key) ?? 1) - 1;
      if (left > 0) this.inflight.set(key, left);
      else {
        this.inflight.delete(key);
        this.dirty.delete(key);
      }
    }
  }

  /** This process changed these keys (its write's reply arrived): drop what they fed. */
  written(keys: readonly string[]): void {
    if (this.entries.size === 0 && this.inflight.size === 0) return;
    for (const key of keys) this.invalidate(key);
  }

  /** Caches a reply; answers the object to hand out for it (the cached one when it is unchanged). */
  private store(
    counter: string,
    credit: string,
    holds: string,
    reply: CounterReply,
    now: number,
  ): CounterReply {
    const current = this.entries.get(counter);
    if (
      current !== undefined &&
      current.credit === credit &&
      current.holds === holds &&
      sameReply(current.reply, reply)
    ) {
      // A reading past its age read again unchanged: keep handing out the object it replaces, so
      // what checks made of it (readings, resolutions, answers) stays in use. A new object would
      // make all of that anew, kept until the next refresh, so all of it would move into V8's old
      // generation (docs/benchmarks.md: scavenges of 8-10 ms instead of 1-2 with refreshes).
      current.at = now;
      this.entries.delete(counter);
      this.entries.set(counter, current);
      return current.reply;
    }
    this.drop(counter);
    // One entry per credit key: at a period boundary the old period's entry gives way.
    const previous = this.owners.get(credit);
    if (previous !== undefined) this.drop(previous);
    if (this.entries.size >= this.options.maxEntries) {
      const oldest = this.entries.keys().next();
      if (!oldest.done) this.drop(oldest.value);
    }
    this.entries.set(counter, { reply, credit, holds, at: now });
    this.owners.set(credit, counter);
    this.owners.set(holds, counter);
    return reply;
  }

  /** Drops a counter's entry (an invalidated one, whatever its age, is never reused). */
  private drop(counter: string): void {
    const entry = this.entries.get(counter);
    if (entry === undefined) return;
    this.entries.delete(counter);
    if (this.owners.get(entry.credit) === counter) this.owners.delete(entry.credit);
    if (this.owners.get(entry.holds) === counter) this.owners.delete(entry.holds);
  }

  private invalidate(key: string): void {
    if (this.inflight.has(key)) this.dirty.add(key);
    if (this.entries.has(key)) this.drop(key);
    else {
      const owner = this.owners.get(key);
      if (owner !== undefined) this.drop(owner);
    }
  }

  /** Forgets every reading, and reads in flight are not cached (Redis lost its data, say). */
  clear(): void {
    this.entries.clear();
    this.owners.clear();
    for (const key of this.inflight.keys()) this.dirty.add(key);
  }

  /** An invalidation message: one key, a list of keys, or null (FLUSHDB / FLUSHALL: everything). */
  private invalidated(payload: unknown): void {
    this.invalidations += 1;
    if (payload === null || payload === undefined) {
      this.clear();
      return;
    }
    const keys = Array.isArray(payload) ? payload : [payload];
    for (const key of keys) this.invalidate(String(key));
  }
}

function sameReply(a: CounterReply, b: CounterReply): boolean {
  if (a[0] !== b[0] || a[1] !== b[1] || a[2] !== b[2] || a[3].length !== b[3].length) return false;
  for (let i = 0; i < a[3].length; i++) if (a[3][i] !== b[3][i]) return false;
  return true;
}
