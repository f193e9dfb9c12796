/**
 * Moves accepted events from the per-slot Redis streams into the Postgres ledger.
 *
 * Streams are read through a consumer group: an entry read but not yet acknowledged stays in the
 * group's pending list, so a crash between reading and inserting loses nothing; another flusher
 * (or this one, later) claims it once idle. Entries are acknowledged and deleted only after the
 * ledger transaction commits, and the insert ignores rows already there, so an entry delivered
 * twice is written once.
 *
 * A record the ledger refuses holds back nothing else: when a read's batch fails for a reason of
 * its rows, or names a customer this database does not have, the flusher writes the rest and sets
 * those records aside in `usage_dead_letters` (flusher-refusals.ts, ledger/dead-letters.ts) before it
 * acknowledges the read's entries.
 */
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { Clock } from '../../../platform/clock.ts';
import type { Db } from '../../../platform/db.ts';
import { randomToken } from '../../../platform/ids.ts';
import type { Logger } from '../../../platform/logger.ts';
import type { Metrics } from '../../../platform/metrics.ts';
import { KeyedPipelines } from '../../../platform/redis.ts';
import type { LedgerCopier } from '../ledger/copy.ts';
import { refusedByLedger, unknownCustomers, writeDeadLetters } from '../ledger/dead-letters.ts';
import { appendLines } from '../ledger/ledger.ts';
import { customerOfKey, LedgerLines } from '../ledger/lines.ts';
import type { FlushOptions } from '../store.ts';
import { type ReadEntry, writeSeparating } from './flusher-refusals.ts';
import { FLUSH_GROUP, type UsageKeys } from './keys.ts';
import { addEntry } from './stream-records.ts';

type StreamEntry = [id: string, fields: string[]];
type StreamReply = Array<[stream: string, entries: StreamEntry[]]>;

const STREAMS_PER_READ = 200;
/** Events one read aims at, over all its streams (an entry holds one event, or a script call's). */
const EVENTS_PER_READ = 20_000;
/** Entries taken from one stream in one read, at most: a bound on memory even when each holds 100 events. */
const MAX_ENTRIES_PER_STREAM = 1_000;
/** Entries one XAUTOCLAIM takes over. */
const CLAIM_COUNT = 100;
/**
 * Entries taken from each stream in one read: about EVENTS_PER_READ events in all, given how many
 * events the entries read last held on average.
 */
export function entriesPerStream(streams: number, eventsPerEntry: number): number {
  const per = Math.floor(EVENTS_PER_READ / (streams * Math.max(1, eventsPerEntry)));
  return Math.min(MAX_ENTRIES_PER_STREAM, Math.max(1, per));
}
/** How often a scheduled flush reads every known slot, not only those marked as written to. */
const FULL_SWEEP_MS = 5_000;
/**
 * How often a flusher looks for entries other consumers read and never acknowledged (a worker
 * killed mid-flush), and how long such an entry must have waited: a killed worker's events reach
 * the ledger within about 25 s. A live flusher settles a read within seconds; claiming an entry it
 * is still settling writes nothing twice (the ledger skips rows it has).
 */
const CLAIM_EVERY_MS = 10_000;
const MARKS_PER_SWEEP = 10_000;
const DEFAULT_CLAIM_IDLE_MS = 15_000;
/** Customers remembered as known to the database (a customer, once there, stays: deletion is a mark). */
const KNOWN_CUSTOMERS = 100_000;

export class LedgerFlusher {
  readonly consumer = `${hostname()}-${process.pid}-${randomToken(6)}`;
  /** Slots this process appended to since the last sweep. */
  readonly dirty = new Set<number>();
  private lastFull = 0;
  private lastClaim: number;
  /** A flush failed: entries this flusher read may wait unacknowledged on it. */
  private unsettled = false;
  /** Events per entry in the last read that found any (script calls hold up to 100 each). */
  private eventsPerEntry = 100;
  /** Customer keys (`LedgerLines.customerKeys`) the database was found to have. */
  private readonly known = new Set<string>();

  constructor(
    private readonly redis: Redis,
    private readonly db: Db,
    private readonly keys: UsageKeys,
    /** When to sweep every stream, claim others' entries and stop: read on it, not on Date.now. */
    private readonly clock: Clock,
    private readonly logger: Logger,
    /** COPY for the ledger rows (real PostgreSQL); null: inserts. */
    private readonly copier: LedgerCopier | null = null,
    /** Counts dead letters (`tessera_usage_dead_letters_total`); null: not counted. */
    private readonly metrics: Metrics | null = null,
  ) {
    this.lastClaim = this.now();
  }

  private now(): number {
    return this.clock.now().getTime();
  }

  /**
   * Flushes until the streams are empty (the default) or, with `full: false` (the scheduled
   * flush), takes what is marked now and goes on only while reads come back full, so a steady
   * trickle is written in the larger batches of the next run. Returns how many events reached
   * the ledger.
   */
  async flush(options: FlushOptions = {}): Promise<number> {
    try {
      const resumed = this.unsettled ? await this.settleOwnPending() : 0;
      this.unsettled = false;
      return resumed + (await this.flushNew(options));
    } catch (err) {
      // Entries this flusher read may be left pending on it (the ledger or Redis went away
      // mid-settle): the next flush settles them first, instead of waiting for a claim.
      this.unsettled = true;
      throw err;
    }
  }

  private async flushNew(options: FlushOptions): Promise<number> {
    const started = this.now();
    let total = 0;
    const claimDue = this.now() - this.lastClaim > CLAIM_EVERY_MS;
    if (options.claimIdleMs !== undefined || claimDue) {
      total += await this.claim(options.claimIdleMs ?? DEFAULT_CLAIM_IDLE_MS);
    }
    const drain = options.full ?? true;
    let full = drain;
    for (;;) {
      const moved = await this.sweep(full || this.now() - this.lastFull > FULL_SWEEP_MS);
      total += moved;
      if (moved === 0 || this.now() - started > (options.budgetMs ?? Number.POSITIVE_INFINITY)) return total;
      // Without a backlog (no read came back full), the next scheduled run takes the rest.
      if (!drain && this.dirty.size === 0) return total;
      full = false;
    }
  }

  /** One read over the dirty (or all) slots; returns how many events it moved. */
  async sweep(full: boolean): Promise<number> {
    let slots: number[];
    if (full) {
      this.lastFull = this.now();
      this.dirty.clear();
      slots = (await this.redis.smembers(this.keys.slots)).map(Number);
    } else {
      // Slots this process wrote to, and those other processes marked (SPOP: each mark is taken
      // by one flusher; a mark lost in a crash is made good by the next full sweep).
      const marked = (await this.redis.spop(this.keys.written, MARKS_PER_SWEEP)) ?? [];
      slots = [...new Set([...this.dirty, ...marked.map(Number)])];
      this.dirty.clear();
    }
    let moved = 0;
    for (let i = 0; i < slots.length; i += STREAMS_PER_READ) {
      const chunk = new Map(slots.slice(i, i + STREAMS_PER_READ).map((s) => [this.keys.streamOfSlot(s), s]));
      const count = entriesPerStream(chunk.size, this.eventsPerEntry);
      const reply = await this.read([...chunk.keys()], count);
      // One ledger transaction for everything read, however many streams it came from.
      moved += await this.settle(reply);
      for (const [stream, entries] of reply) {
        // A full read may have left more behind: look at this stream again next round.
        if (entries.length === count) this.dirty.add(chunk.get(stream)!);
      }
    }
    return moved;
  }

  /**
   * Settles the entries this flusher read and did not acknowledge (a flush failed between the
   * read and the acknowledgement): they are delivered again to no one else until they are idle
   * long enough for a claim. Reads its own pending list (`XREADGROUP ... 0`), a page at a time.
   */
  private async settleOwnPending(): Promise<number> {
    const streams = (await this.redis.smembers(this.keys.slots)).map((s) =>
      this.keys.streamOfSlot(Number(s)),
    );
    let moved = 0;
    for (let i = 0; i < streams.length; i += 1000) {
      const pipeline = this.redis.pipeline();
      const chunk = streams.slice(i, i + 1000);
      for (const stream of chunk) pipeline.call('XPENDING', stream, FLUSH_GROUP);
      const replies = (await pipeline.exec()) ?? [];
      const mine = chunk.filter((_, j) => {
        const [err, reply] = replies[j] ?? [];
        if (err || !Array.isArray(reply) || !Array.isArray(reply[3])) return false;
        return (reply[3] as Array<[string, string]>).some(([consumer]) => consumer === this.consumer);
      });
      for (const stream of mine) {
        let after = '0';
        for (;;) {
          const reply = streamReply(
            await this.redis.call(
              'XREADGROUP',
              'GROUP',
              FLUSH_GROUP,
              this.consumer,
              'COUNT',
              CLAIM_COUNT,
              'STREAMS',
              stream,
              after,
            ),
          );
          const entries = reply[0]?.[1] ?? [];
          if (entries.length === 0) break;
          after = entries[entries.length - 1]![0];
          // Entries deleted meanwhile come back without fields: nothing to write, only to acknowledge.
          const gone = entries.filter((e) => e[1] === null).map((e) => e[0]);
          if (gone.length > 0) await this.redis.xack(stream, FLUSH_GROUP, ...gone);
          moved += await this.settle([[stream, entries.filter((e) => e[1] !== null)]]);
        }
      }
    }
    return moved;
  }

  /** Takes over entries other consumers read but never acknowledged (they crashed). */
  async claim(minIdleMs: number): Promise<number> {
    this.lastClaim = this.now();
    const streams = (await this.redis.smembers(this.keys.slots)).map((s) =>
      this.keys.streamOfSlot(Number(s)),
    );
    // One pipelined XPENDING per stream finds the few with pending entries.
    const pending: string[] = [];
    for (let i = 0; i < streams.length; i += 1000) {
      const pipelines = new KeyedPipelines(this.redis);
      const chunk = streams.slice(i, i + 1000);
      for (const stream of chunk) pipelines.add(stream, (p) => p.call('XPENDING', stream, FLUSH_GROUP));
      const replies = await pipelines.exec();
      replies.forEach(([err, reply], j) => {
        if (!err && Array.isArray(reply) && Number(reply[0]) > 0) pending.push(chunk[j]!);
      });
    }
    let moved = 0;
    for (const stream of pending) {
      let cursor = '0-0';
      do {
        const reply = (await this.redis
          .call('XAUTOCLAIM', stream, FLUSH_GROUP, this.consumer, minIdleMs, cursor, 'COUNT', CLAIM_COUNT)
          .catch(() => null)) as [string, StreamEntry[]] | null;
        if (!reply) break;
        cursor = reply[0];
        moved += await this.settle([[stream, reply[1].filter((e) => e[1] !== null)]]);
      } while (cursor !== '0-0');
    }
    return moved;
  }

  /**
   * One XREADGROUP over the streams; on a cluster, where the streams are in as many slots, one per
   * stream (sent together).
   */
  private async read(streams: string[], count: number): Promise<StreamReply> {
    if (this.redis.isCluster && streams.length > 1) {
      const replies = await Promise.all(streams.map((stream) => this.read([stream], count)));
      return replies.flat();
    }
    const args = ['GROUP', FLUSH_GROUP, this.consumer, 'COUNT', count, 'STREAMS'];
    const ids = streams.map(() => '>');
    try {
      return streamReply(await this.redis.call('XREADGROUP', ...args, ...streams, ...ids));
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOGROUP')) throw err;
      // A stream that lost its group (Redis was flushed while running): recreate it, from the start.
      await Promise.all(streams.map((s) => ensureGroup(this.redis, s)));
      return streamReply(await this.redis.call('XREADGROUP', ...args, ...streams, ...ids));
    }
  }

  /**
   * Writes the entries' events to the ledger (and those it refuses to the dead letters), then,
   * after the commit, acknowledges and deletes the entries. Returns how many events reached the
   * ledger. Settling the same entries again (a crash before the acknowledgement) writes nothing new.
   */
  async settle(reply: StreamReply): Promise<number> {
    const lines = new LedgerLines();
    const read: ReadEntry[] = [];
    for (const [stream, entries] of reply) {
      for (const [id, fields] of entries) {
        try {
          // Every event of the entry, or none: an entry is acknowledged whole.
          const entry = new LedgerLines();
          addEntry(entry, fields);
          lines.append(entry);
          read.push({ stream, id, fields });
        } catch (err) {
          this.logger.error({ err, stream, id }, 'unreadable usage stream entry left pending');
        }
      }
    }
    if (lines.count === 0) return 0;
    this.eventsPerEntry = lines.count / read.length;
    const moved = await this.write(lines, read);
    const pipelines = new KeyedPipelines(this.redis);
    for (const [stream, ids] of idsByStream(read)) {
      pipelines.add(stream, (p) => p.xack(stream, FLUSH_GROUP, ...ids));
      pipelines.add(stream, (p) => p.xdel(stream, ...ids));
    }
    const results = await pipelines.exec();
    for (const [err] of results) if (err) throw err;
    return moved;
  }

  /**
   * The common way is one batch: a read's customers are looked up (one query) only the first time
   * this flusher meets them. The events are taken apart only when a customer is not in the
   * database or the batch fails for a reason of its rows.
   */
  private async write(lines: LedgerLines, read: ReadEntry[]): Promise<number> {
    // Only customers not seen before are looked up: in the common case, no query at all.
    const keys = lines.customerKeys().filter((k) => !this.known.has(k));
    const unknown = keys.length > 0 ? await unknownCustomers(this.db, keys.map(customerOfKey)) : NONE;
    if (this.known.size + keys.length > KNOWN_CUSTOMERS) this.known.clear();
    keys.forEach((k, i) => {
      if (!unknown.has(i)) this.known.add(k);
    });
    if (unknown.size === 0) {
      try {
        await appendLines(this.db, lines, this.copier);
        return lines.count;
      } catch (err) {
        if (!refusedByLedger(err)) throw err;
      }
    }
    const strangers = new Set([...unknown].map((i) => keys[i]!));
    const { moved, letters } = await writeSeparating(this.db, this.copier, read, strangers);
    for (const letter of await writeDeadLetters(this.db, letters)) {
      this.metrics?.usageDeadLetters.inc({ reason: letter.reason });
      const { record: _, ...where } = letter;
      this.logger.warn(where, 'usage record kept out of the ledger: moved to usage_dead_letters');
    }
    return moved;
  }
}

const NONE: ReadonlySet<number> = new Set();

function idsByStream(read: ReadEntry[]): Map<string, string[]> {
  const byStream = new Map<string, string[]>();
  for (const { stream, id } of read) {
    const ids = byStream.get(stream);
    if (ids) ids.push(id);
    else byStream.set(stream, [id]);
  }
  return byStream;
}

/** XREADGROUP answers a map: RESP3 sends it as [key, value, ...], RESP2 as [[key, value], ...]. */
function streamReply(raw: unknown): StreamReply {
  if (!Array.isArray(raw) || raw.length === 0) return [];
  if (Array.isArray(raw[0])) return raw as StreamReply;
  const out: StreamReply = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i] as string, raw[i + 1] as StreamEntry[]]);
  return out;
}

export async function ensureGroup(redis: Redis, stream: string): Promise<void> {
  try {
    await redis.xgroup('CREATE', stream, FLUSH_GROUP, '0', 'MKSTREAM');
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('BUSYGROUP')) throw err;
  }
}
