import { LRUCache } from 'lru-cache';
import type { CustomerSnapshot } from '../../domain/types.ts';
import type { CatalogCache } from './catalog-cache.ts';

/**
 * Per-process cache of customer snapshots (bounded LRU, each entry kept for the TTL give or take a
 * fifth). Entries are dropped when the customer's
 * holdings change (locally at commit, on other nodes through Redis pub/sub) and, for the whole
 * environment, when the catalog or settings change. A generation counter per key keeps a load
 * that raced an invalidation from putting a stale snapshot back.
 *
 * With `catalogs`, the environments' catalogs are kept beside the snapshots and dropped with them.
 * With `versionsTracked` > 0 (a read replica is configured) it also remembers, for that many
 * customers (least recently seen forgotten first), the highest entitlement version this process
 * has seen: in a snapshot it loaded, in an invalidation, or from its own commit. A snapshot read
 * from the replica that is older than that is not used (see snapshot-reads.ts).
 */
export class SnapshotCache {
  private readonly entries: LRUCache<string, CustomerSnapshot>;
  private readonly generations = new Map<string, number>();
  private readonly versions: LRUCache<string, number> | null;
  private epoch = 0;
  readonly catalogs: CatalogCache | undefined;

  constructor(
    max: number,
    private readonly ttlMs: number,
    options: { versionsTracked?: number; catalogs?: CatalogCache } = {},
  ) {
    const versionsTracked = options.versionsTracked ?? 0;
    this.catalogs = options.catalogs;
    this.entries = new LRUCache<string, CustomerSnapshot>({
      max: Math.max(1, max),
      ttl: ttlMs,
      ttlAutopurge: false,
    });
    this.versions = versionsTracked > 0 ? new LRUCache<string, number>({ max: versionsTracked }) : null;
  }

  /** The highest entitlement version of the customer this process has seen (0: none, or not tracked). */
  seenVersion(environment: string, customerId: string): number {
    if (!this.versions) return 0;
    return this.versions.get(SnapshotCache.key(environment, customerId)) ?? 0;
  }

  private see(key: string, version: number): void {
    if (!this.versions) return;
    const seen = this.versions.get(key);
    if (seen === undefined || seen < version) this.versions.set(key, version);
  }

  static key(environment: string, customerId: string): string {
    return `${environment}\u0000${customerId}`;
  }

  get(environment: string, customerId: string): CustomerSnapshot | undefined {
    return this.entries.get(SnapshotCache.key(environment, customerId));
  }

  /** A token to hand back to `set`: the set is ignored if an invalidation happened in between. */
  ticket(environment: string, customerId: string): number {
    return this.epoch * 1_000_000 + (this.generations.get(SnapshotCache.key(environment, customerId)) ?? 0);
  }

  set(snapshot: CustomerSnapshot, ticket: number): void {
    // Seen even when not cached: the caller answers from it.
    if (snapshot.exists)
      this.see(SnapshotCache.key(snapshot.environment, snapshot.customerId), snapshot.version);
    if (this.ticket(snapshot.environment, snapshot.customerId) !== ticket) return;
    const key = SnapshotCache.key(snapshot.environment, snapshot.customerId);
    // A slower load never replaces a newer snapshot (an invalidation that found the newer one
    // already cached kept the ticket as it was).
    const cached = this.entries.peek(key);
    if (cached && cached.version > snapshot.version) return;
    this.entries.set(key, snapshot, { ttl: this.jitteredTtl() });
  }

  /**
   * Each entry lives the TTL give or take a fifth: snapshots loaded together (a node's warm-up, or
   * after a catalog change) then expire over a spell instead of all at once, and their reloads and
   * the garbage they leave are spread out the same way.
   */
  private jitteredTtl(): number {
    return Math.max(1, Math.round(this.ttlMs * (0.8 + 0.4 * Math.random())));
  }

  /**
   * Drops a customer's snapshot. With `version`, a snapshot already at or past that version is
   * kept: the change it announces is in it (a repeat from the outbox after the fast path).
   */
  invalidateCustomer(environment: string, customerId: string, version?: number): void {
    const key = SnapshotCache.key(environment, customerId);
    if (version !== undefined) {
      this.see(key, version);
      const cached = this.entries.peek(key);
      if (cached && cached.version >= version) return;
    }
    this.entries.delete(key);
    this.generations.set(key, (this.generations.get(key) ?? 0) + 1);
    if (this.generations.size > 100_000) {
      // Forgetting generations must not let an old ticket match again: move the epoch on too.
      this.generations.clear();
      this.epoch += 1;
    }
  }

  invalidateEnvironment(environment: string): void {
    this.epoch += 1;
    this.catalogs?.invalidate(environment);
    for (const key of [...this.entries.keys()])
      if (key.startsWith(`${environment}\u0000`)) this.entries.delete(key);
  }

  /** Drops every snapshot (invalidations may have been missed); loads under way are not cached. */
  clear(): void {
    this.epoch += 1;
    this.entries.clear();
  }

  /** Milliseconds until the customer's cached snapshot expires (0 when none is cached). */
  remainingTtl(environment: string, customerId: string): number {
    return Math.max(0, this.entries.getRemainingTTL(SnapshotCache.key(environment, customerId)));
  }

  get size(): number {
    return this.entries.size;
  }
}
