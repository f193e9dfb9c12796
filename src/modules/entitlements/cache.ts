import { LRUCache } from 'lru-cache';
import type { CustomerSnapshot } from '../../domain/types.ts';

/**
 * Per-process cache of customer snapshots (bounded LRU). Entries are dropped when the customer's
 * holdings change (locally at commit, on other nodes through Redis pub/sub) and, for the whole
 * environment, when the catalog or settings change. A generation counter per key keeps a load
 * that raced an invalidation from putting a stale snapshot back.
 */
export class SnapshotCache {
  private readonly entries: LRUCache<string, CustomerSnapshot>;
  private readonly generations = new Map<string, number>();
  private epoch = 0;

  constructor(max: number, ttlMs: number) {
    this.entries = new LRUCache<string, CustomerSnapshot>({
      max: Math.max(1, max),
      ttl: ttlMs,
      ttlAutopurge: false,
    });
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
    if (this.ticket(snapshot.environment, snapshot.customerId) !== ticket) return;
    this.entries.set(SnapshotCache.key(snapshot.environment, snapshot.customerId), snapshot);
  }

  /**
   * Drops a customer's snapshot. With `version`, a snapshot already at or past that version is
   * kept: the change it announces is in it (a repeat from the outbox after the fast path).
   */
  invalidateCustomer(environment: string, customerId: string, version?: number): void {
    const key = SnapshotCache.key(environment, customerId);
    if (version !== undefined) {
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
    for (const key of [...this.entries.keys()])
      if (key.startsWith(`${environment}\u0000`)) this.entries.delete(key);
  }

  /** Drops every snapshot (invalidations may have been missed); loads under way are not cached. */
  clear(): void {
    this.epoch += 1;
    this.entries.clear();
  }

  get size(): number {
    return this.entries.size;
  }
}
