import type { Period } from '../../domain/periods.ts';
import { resolveEntitlements, withUsage } from '../../domain/resolve.ts';
import type { ResolvedEntitlements, UsageReading } from '../../domain/resolved.ts';
import type { CustomerSnapshot } from '../../domain/types.ts';
import { nextChangeAfter } from '../../domain/validity.ts';
import type { Clock } from '../../platform/clock.ts';
import type { Db } from '../../platform/db.ts';
import { type Logger, ThrottledWarnings } from '../../platform/logger.ts';
import type { Metrics } from '../../platform/metrics.ts';
import type { SnapshotCache } from './cache.ts';
import { SnapshotReads } from './snapshot-reads.ts';

export interface UsageQuery {
  feature: string;
  period: Period;
}

/** Where metered `used` values come from: the metering slice's usage store (runtime.ts hands it in). */
export interface UsageSource {
  read(
    environment: string,
    snapshot: CustomerSnapshot,
    queries: UsageQuery[],
  ): Promise<Map<string, UsageReading>>;
}

/**
 * The PDP's entry point for services: cached snapshot (PIP) -> usage -> pure resolution.
 * On a warm cache a decision costs no database query.
 */
export class DecisionEngine {
  /** Warnings about conditions refused at evaluation, at most one a minute for each. */
  readonly warnings: ThrottledWarnings;
  /** Where cache misses load from: the primary, or the read replica when it is not behind. */
  readonly reads: SnapshotReads;

  constructor(
    db: Db,
    readonly cache: SnapshotCache,
    private readonly usage: UsageSource,
    logger: Logger,
    clock: Clock,
    options: { replica?: Db | null; metrics?: Metrics } = {},
  ) {
    const now = () => clock.now().getTime();
    this.warnings = new ThrottledWarnings(logger, now);
    this.reads = new SnapshotReads(db, options.replica ?? null, this.warnings, now, options.metrics);
  }

  /** The customer's snapshot if this process has it cached, without a load. */
  cachedSnapshot(environment: string, customerId: string): CustomerSnapshot | undefined {
    return this.cache.get(environment, customerId);
  }

  async snapshot(environment: string, customerId: string, now: Date): Promise<CustomerSnapshot> {
    const cached = this.cache.get(environment, customerId);
    if (cached) return cached;
    const ticket = this.cache.ticket(environment, customerId);
    const seen = this.cache.seenVersion(environment, customerId);
    const loaded = await this.reads.load(environment, customerId, now, seen, this.cache.catalogs);
    this.cache.set(loaded, ticket);
    return loaded;
  }

  /**
   * Per snapshot (a new snapshot after an invalidation starts afresh) and per feature asked for,
   * valid until the snapshot's next time boundary: the resolution itself when it reads no usage,
   * else the usage queries it needs and the zero-usage resolution, which each metered check
   * completes with one usage read (`withUsage`) instead of resolving again.
   */
  private readonly memo = new WeakMap<CustomerSnapshot, Map<string, Memo>>();

  /** Resolves what the customer holds now; with `only`, just that feature (what a check needs). */
  async resolve(
    environment: string,
    customerId: string,
    now: Date,
    only?: string,
  ): Promise<ResolvedEntitlements> {
    // A warm snapshot is taken without an await (a check does this every time).
    const snapshot =
      this.cache.get(environment, customerId) ?? (await this.snapshot(environment, customerId, now));
    const memoKey = only ?? '*';
    const t = now.getTime();
    let memo = this.memo.get(snapshot)?.get(memoKey);
    // Reused only forwards in time: a clock moved back (tests) resolves afresh.
    if (memo && !(t >= memo.from && t < memo.until)) memo = undefined;
    if (!memo) {
      memo = this.learn(snapshot, now, only);
      let perSnapshot = this.memo.get(snapshot);
      if (!perSnapshot) {
        perSnapshot = new Map();
        this.memo.set(snapshot, perSnapshot);
      }
      perSnapshot.set(memoKey, memo);
    }
    // Without usage the memoised resolution is the answer, handed out as is (its identity keys the
    // service's decision memo; its `evaluatedAt` is when it was first resolved, and callers report
    // their own `now`).
    if (memo.queries.length === 0) return memo.base;
    const readings = await this.usage.read(environment, snapshot, memo.queries);
    const last = memo.last;
    if (last !== null && sameReadings(last.readings, memo.queries, readings)) return last.resolved;
    const resolved = withUsage(memo.base, snapshot, now, (feature) => readings.get(feature) ?? ZERO);
    memo.last = { readings, resolved };
    return resolved;
  }

  /** A first resolution with zero usage tells which metered features (and periods) apply. */
  private learn(snapshot: CustomerSnapshot, now: Date, only: string | undefined): Memo {
    let queries: UsageQuery[] = NO_QUERIES;
    const first = resolveEntitlements(
      snapshot,
      now,
      (feature, period) => {
        if (queries === NO_QUERIES) queries = [];
        queries.push({ feature, period });
        return { used: 0 };
      },
      only,
    );
    let until = nextChangeAfter(snapshot, now)?.getTime() ?? Number.POSITIVE_INFINITY;
    // A usage period that ends changes the queries.
    for (const q of queries) until = Math.min(until, q.period.end.getTime());
    return { from: now.getTime(), until, queries, base: first, last: null };
  }
}

const ZERO: UsageReading = Object.freeze({ used: 0 });

/**
 * Whether a usage source handed out the very reading objects it did last time, for every query.
 * A source may hand out the same object again when its counter has not changed (the Redis store
 * does, from its counter cache); equal objects mean an equal resolution, so the last one is reused.
 */
function sameReadings(
  before: Map<string, UsageReading>,
  queries: UsageQuery[],
  now: Map<string, UsageReading>,
): boolean {
  for (const q of queries) {
    const reading = now.get(q.feature);
    if (reading === undefined || reading !== before.get(q.feature)) return false;
  }
  return true;
}

/** Shared by every memo that reads no usage (most of them): one array less per customer and feature. */
const NO_QUERIES: UsageQuery[] = [];

interface Memo {
  from: number;
  until: number;
  queries: UsageQuery[];
  /** The resolution with zero usage: the answer itself when `queries` is empty, else completed with the readings by `withUsage`. */
  base: ResolvedEntitlements;
  /** The last completion of `base` and the readings it was made from (the same objects again: the same answer). */
  last: { readings: Map<string, UsageReading>; resolved: ResolvedEntitlements } | null;
}
