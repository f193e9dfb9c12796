import type {
  CreditGrant,
  CustomerSnapshot,
  Override,
  PlanVersion,
  Subscription,
} from '../../domain/types.ts';
import type { Executor } from '../../platform/db.ts';
import { type CustomerRow, getCustomerRows } from '../customers/repo.ts';
import { loadLiveGrantsOf, loadLiveOverridesOf } from '../overrides/repo.ts';
import { loadSubscriptionsOf } from '../subscriptions/repo.ts';
import { type CatalogSource, type EnvironmentCatalog, loadEnvironmentCatalog } from './catalog-cache.ts';

/**
 * The PIP: everything the decision engine needs about one customer. A snapshot stays valid as time
 * passes (time-boxed rows are filtered at decision time), so it can be cached until something the
 * customer holds, or the catalog, changes.
 *
 * The customer's rows (customer, subscriptions, overrides, grants) are read together from `db`;
 * the environment's catalog (features, settings, plan versions) comes from `catalogs` when given
 * (the decision engine's per-environment cache, read from the primary), else it is read from `db`.
 */
export async function loadCustomerSnapshot(
  db: Executor,
  environment: string,
  customerId: string,
  now: Date,
  catalogs?: CatalogSource,
): Promise<CustomerSnapshot> {
  // One round trip: the customer's rows are asked for whether or not the customer exists.
  return (await loadCustomerSnapshots(db, environment, [customerId], now, catalogs)).get(customerId)!;
}

/**
 * `loadCustomerSnapshot` for many customers of one environment in one round trip (four queries
 * over all of them): what a burst of cache misses costs, instead of four queries each (a single
 * load is a batch of one). `now` is
 * the earliest of the loads' instants (rows ending in between are filtered at decision time).
 */
export async function loadCustomerSnapshots(
  db: Executor,
  environment: string,
  customerIds: readonly string[],
  now: Date,
  catalogs?: CatalogSource,
): Promise<Map<string, CustomerSnapshot>> {
  const [catalog, customers, subscriptions, overrides, grants] = await Promise.all([
    catalogs ? catalogs.catalog(environment) : loadEnvironmentCatalog(db, environment),
    getCustomerRows(db, environment, customerIds),
    loadSubscriptionsOf(db, environment, customerIds),
    loadLiveOverridesOf(db, environment, customerIds, now),
    loadLiveGrantsOf(db, environment, customerIds, now),
  ]);
  const rows = new Map(customers.map((row) => [row.customer_id, row]));
  const out = new Map<string, CustomerSnapshot>();
  await Promise.all(
    customerIds.map(async (customerId) => {
      out.set(
        customerId,
        await assemble(
          environment,
          customerId,
          catalog,
          rows.get(customerId) ?? null,
          subscriptions.get(customerId) ?? [],
          overrides.get(customerId) ?? [],
          grants.get(customerId) ?? [],
        ),
      );
    }),
  );
  return out;
}

async function assemble(
  environment: string,
  customerId: string,
  catalog: EnvironmentCatalog,
  customer: CustomerRow | null,
  subscriptions: Subscription[],
  overrides: Override[],
  grants: CreditGrant[],
): Promise<CustomerSnapshot> {
  const { features, policy } = catalog;
  if (!customer) {
    return {
      environment,
      customerId,
      exists: false,
      attributes: {},
      version: 0,
      features,
      subscriptions: [],
      planVersions: new Map(),
      overrides: [],
      grants: [],
      policy,
    };
  }
  return {
    environment,
    customerId,
    exists: true,
    attributes: customer.attributes,
    version: customer.version,
    features,
    subscriptions,
    planVersions: await referencedPlanVersions(catalog, subscriptions),
    overrides,
    grants,
    policy,
  };
}

/**
 * Every plan version a subscription uses now or may switch to (scheduled changes, trial
 * downgrades): the exact versions and each "latest version" target, from the catalog.
 */
async function referencedPlanVersions(
  catalog: EnvironmentCatalog,
  subscriptions: Subscription[],
): Promise<Map<string, PlanVersion>> {
  const exact = new Map<string, { planKey: string; version: number }>();
  const latest = new Set<string>();
  const want = (planKey: string, version: number) => exact.set(`${planKey}@${version}`, { planKey, version });
  for (const sub of subscriptions) {
    want(sub.planKey, sub.planVersion);
    if (sub.scheduledChange) {
      if (sub.scheduledChange.planVersion === null) latest.add(sub.scheduledChange.planKey);
      else want(sub.scheduledChange.planKey, sub.scheduledChange.planVersion);
    }
    if (sub.trialDowngradeTo) latest.add(sub.trialDowngradeTo);
  }
  const found = await catalog.planVersions([...exact.values()], [...latest]);
  const versions = found.versions;
  for (const plan of found.latest.values()) if (plan) versions.set(`${plan.planKey}@${plan.version}`, plan);
  return versions;
}
