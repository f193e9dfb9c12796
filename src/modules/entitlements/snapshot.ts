import type { CustomerSnapshot, Feature, PlanVersion, Subscription } from '../../domain/types.ts';
import type { Executor } from '../../platform/db.ts';
import { latestPlanVersion, loadFeatures, loadPlanVersions } from '../catalog/repo.ts';
import { getCustomerRow } from '../customers/repo.ts';
import { loadLiveGrants, loadLiveOverrides } from '../overrides/repo.ts';
import { readSettings } from '../settings/repo.ts';
import { loadCustomerSubscriptions } from '../subscriptions/repo.ts';
import { internFeatures, internPlanVersion, internPlanVersions } from './intern.ts';

const DAY_MS = 86_400_000;

/**
 * The PIP: everything the decision engine needs about one customer, in one consistent read.
 * A snapshot stays valid as time passes (time-boxed rows are filtered at decision time), so it can
 * be cached until something the customer holds, or the catalog, changes.
 */
export async function loadCustomerSnapshot(
  db: Executor,
  environment: string,
  customerId: string,
  now: Date,
): Promise<CustomerSnapshot> {
  const [customer, loadedFeatures, settings] = await Promise.all([
    getCustomerRow(db, environment, customerId),
    loadFeatures(db, environment),
    readSettings(db, environment),
  ]);
  // Shared with every other snapshot that loaded the same content (see intern.ts).
  const features = internFeatures(loadedFeatures);
  const loadedFallback = settings.fallback_plan
    ? await latestPlanVersion(db, environment, settings.fallback_plan, features)
    : null;
  const fallbackPlan = loadedFallback ? internPlanVersion(loadedFallback) : null;
  const policy = { pastDueGraceMs: settings.past_due_grace_days * DAY_MS, fallbackPlan };
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
  const [subscriptions, overrides, grants] = await Promise.all([
    loadCustomerSubscriptions(db, environment, customerId),
    loadLiveOverrides(db, environment, customerId, now),
    loadLiveGrants(db, environment, customerId, now),
  ]);
  return {
    environment,
    customerId,
    exists: true,
    attributes: customer.attributes,
    version: customer.version,
    features,
    subscriptions,
    planVersions: internPlanVersions(
      await loadReferencedPlanVersions(db, environment, subscriptions, features),
    ),
    overrides,
    grants,
    policy,
  };
}

/**
 * Every plan version a subscription uses now or may switch to (scheduled changes, trial
 * downgrades): the exact versions in one query, each "latest version" target in one more.
 */
export async function loadReferencedPlanVersions(
  db: Executor,
  environment: string,
  subscriptions: Subscription[],
  features: Map<string, Feature>,
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
  const [versions, latestVersions] = await Promise.all([
    loadPlanVersions(db, environment, [...exact.values()], features),
    Promise.all([...latest].map((planKey) => latestPlanVersion(db, environment, planKey, features))),
  ]);
  for (const plan of latestVersions) if (plan) versions.set(`${plan.planKey}@${plan.version}`, plan);
  return versions;
}
