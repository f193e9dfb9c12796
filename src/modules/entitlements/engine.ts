import type { Period } from '../../domain/periods.ts';
import { resolveEntitlements } from '../../domain/resolve.ts';
import type { ResolvedEntitlements, UsageReading } from '../../domain/resolved.ts';
import type { CustomerSnapshot } from '../../domain/types.ts';
import type { Db } from '../../platform/db.ts';
import type { SnapshotCache } from './cache.ts';
import { loadCustomerSnapshot } from './snapshot.ts';

export interface UsageQuery {
  feature: string;
  period: Period;
}

/** Where metered `used` values come from: the metering slice's counters, or zero until it is configured. */
export interface UsageSource {
  read(
    environment: string,
    snapshot: CustomerSnapshot,
    queries: UsageQuery[],
  ): Promise<Map<string, UsageReading>>;
}

export const zeroUsage: UsageSource = {
  read: async () => new Map(),
};

/**
 * The PDP's entry point for services: cached snapshot (PIP) -> usage -> pure resolution.
 * On a warm cache a decision costs no database query.
 */
export class DecisionEngine {
  constructor(
    private readonly db: Db,
    readonly cache: SnapshotCache,
    public usage: UsageSource = zeroUsage,
  ) {}

  async snapshot(environment: string, customerId: string, now: Date): Promise<CustomerSnapshot> {
    const cached = this.cache.get(environment, customerId);
    if (cached) return cached;
    const ticket = this.cache.ticket(environment, customerId);
    const loaded = await loadCustomerSnapshot(this.db, environment, customerId, now);
    this.cache.set(loaded, ticket);
    return loaded;
  }

  async resolve(environment: string, customerId: string, now: Date): Promise<ResolvedEntitlements> {
    const snapshot = await this.snapshot(environment, customerId, now);
    // First pass learns which metered features (and periods) apply; usage is read only for those.
    const queries: UsageQuery[] = [];
    const first = resolveEntitlements(snapshot, now, (feature, period) => {
      queries.push({ feature, period });
      return { used: 0 };
    });
    if (queries.length === 0) return first;
    const readings = await this.usage.read(environment, snapshot, queries);
    if (readings.size === 0) return first;
    return resolveEntitlements(snapshot, now, (feature) => readings.get(feature) ?? { used: 0 });
  }
}
