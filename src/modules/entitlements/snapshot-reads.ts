import type { CustomerSnapshot } from '../../domain/types.ts';
import type { Db } from '../../platform/db.ts';
import type { ThrottledWarnings } from '../../platform/logger.ts';
import type { Metrics, Tally } from '../../platform/metrics.ts';
import type { CatalogSource } from './catalog-cache.ts';
import { loadCustomerSnapshots } from './snapshot.ts';

/** After a replica error, loads go straight to the primary for this long before trying it again. */
const REPLICA_RETRY_MS = 5_000;

/** The most customers one batched snapshot load asks for. */
const MAX_BATCH = 500;

interface Waiting {
  now: Date;
  catalogs: CatalogSource | undefined;
  customers: Map<string, Array<{ resolve: (s: CustomerSnapshot) => void; reject: (e: unknown) => void }>>;
}

/**
 * Snapshot loads of one database, batched: the cache misses that arrive within one turn of the
 * event loop (one environment at a time, at most MAX_BATCH customers) are read together, four
 * queries for all of them (`loadCustomerSnapshots`), and loads of the same customer share one read.
 * A burst of misses (a node starting, a wave of new customers) costs the database a query per
 * batch rather than four per customer; a lone miss is a batch of one.
 */
export class SnapshotBatcher {
  private readonly waiting = new Map<string, Waiting>();
  private scheduled = false;

  constructor(private readonly db: Db) {}

  load(
    environment: string,
    customerId: string,
    now: Date,
    catalogs?: CatalogSource,
  ): Promise<CustomerSnapshot> {
    let group = this.waiting.get(environment);
    if (!group) {
      group = { now, catalogs, customers: new Map() };
      this.waiting.set(environment, group);
    } else if (now < group.now) group.now = now;
    let waiters = group.customers.get(customerId);
    if (!waiters) {
      waiters = [];
      group.customers.set(customerId, waiters);
    }
    const loaded = new Promise<CustomerSnapshot>((resolve, reject) => waiters.push({ resolve, reject }));
    if (group.customers.size >= MAX_BATCH) {
      this.waiting.delete(environment);
      void this.read(environment, group);
    } else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
    return loaded;
  }

  private flush(): void {
    this.scheduled = false;
    const groups = [...this.waiting];
    this.waiting.clear();
    for (const [environment, group] of groups) void this.read(environment, group);
  }

  private async read(environment: string, group: Waiting): Promise<void> {
    const ids = [...group.customers.keys()];
    try {
      const snapshots = await loadCustomerSnapshots(this.db, environment, ids, group.now, group.catalogs);
      for (const [customerId, waiters] of group.customers) {
        const snapshot = snapshots.get(customerId)!;
        for (const waiter of waiters) waiter.resolve(snapshot);
      }
    } catch (err) {
      for (const waiters of group.customers.values()) for (const waiter of waiters) waiter.reject(err);
    }
  }
}

/** Why a snapshot load went where it went (`tessera_snapshot_loads_total{source, reason}`). */
type LoadReason = 'primary_only' | 'current' | 'replica_behind' | 'replica_error' | 'replica_resting';

/**
 * Where a snapshot load (a cache miss) reads: the primary, or the read replica when one is
 * configured and not behind. A replica snapshot older than the highest version this process has
 * seen for the customer (`seenVersion`: from its cache, an invalidation or its own commit) is
 * set aside and the primary read instead, so a node never answers from an older snapshot than one
 * it already knew of. A replica that fails (unreachable, a query cancelled by recovery) is left
 * alone for REPLICA_RETRY_MS, the primary answering meanwhile. Writes and every read inside a
 * transaction use the primary: only this loader ever sees the replica.
 */
export class SnapshotReads {
  private readonly tallies: Record<LoadReason, Tally> | null;
  private replicaRestingUntil = 0;
  private readonly primary: SnapshotBatcher;
  private readonly replica: SnapshotBatcher | null;

  constructor(
    primary: Db,
    replica: Db | null,
    private readonly warnings: ThrottledWarnings,
    private readonly now: () => number,
    metrics?: Metrics,
  ) {
    this.primary = new SnapshotBatcher(primary);
    this.replica = replica ? new SnapshotBatcher(replica) : null;
    this.tallies = metrics
      ? {
          primary_only: metrics.tally(metrics.snapshotLoads, { source: 'primary', reason: 'primary_only' }),
          current: metrics.tally(metrics.snapshotLoads, { source: 'replica', reason: 'current' }),
          replica_behind: metrics.tally(metrics.snapshotLoads, {
            source: 'primary',
            reason: 'replica_behind',
          }),
          replica_error: metrics.tally(metrics.snapshotLoads, { source: 'primary', reason: 'replica_error' }),
          replica_resting: metrics.tally(metrics.snapshotLoads, {
            source: 'primary',
            reason: 'replica_resting',
          }),
        }
      : null;
  }

  get hasReplica(): boolean {
    return this.replica !== null;
  }

  async load(
    environment: string,
    customerId: string,
    now: Date,
    seenVersion: number,
    catalogs?: CatalogSource,
  ): Promise<CustomerSnapshot> {
    if (!this.replica) return this.fromPrimary('primary_only', environment, customerId, now, catalogs);
    if (this.now() < this.replicaRestingUntil)
      return this.fromPrimary('replica_resting', environment, customerId, now, catalogs);
    let snapshot: CustomerSnapshot;
    try {
      snapshot = await this.replica.load(environment, customerId, now, catalogs);
    } catch (err) {
      this.replicaRestingUntil = this.now() + REPLICA_RETRY_MS;
      this.warnings.warn(
        'replica-read',
        { err },
        'the read replica failed; snapshot loads use the primary for a while',
      );
      return this.fromPrimary('replica_error', environment, customerId, now, catalogs);
    }
    // A customer unknown to the replica has version 0: behind any change this node has seen.
    if (snapshot.version < seenVersion)
      return this.fromPrimary('replica_behind', environment, customerId, now, catalogs);
    this.tallies?.current.inc();
    return snapshot;
  }

  private fromPrimary(
    reason: LoadReason,
    environment: string,
    customerId: string,
    now: Date,
    catalogs: CatalogSource | undefined,
  ): Promise<CustomerSnapshot> {
    this.tallies?.[reason].inc();
    return this.primary.load(environment, customerId, now, catalogs);
  }
}
