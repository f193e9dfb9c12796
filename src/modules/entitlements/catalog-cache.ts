import type { AccessPolicy, Feature, PlanVersion } from '../../domain/types.ts';
import type { Db } from '../../platform/db.ts';
import { latestPlanVersion, loadFeatures, loadPlanVersions } from '../catalog/repo.ts';
import { readSettings } from '../settings/repo.ts';
import { internFeatures, internPlanVersion } from './intern.ts';

const DAY_MS = 86_400_000;

/** Plan versions one environment's catalog keeps at most (a catalog has a few dozen). */
const MAX_PLAN_VERSIONS = 1_000;

/** What every snapshot of an environment shares: its features, its policy and its plan versions. */
export interface EnvironmentCatalog {
  features: Map<string, Feature>;
  policy: AccessPolicy;
  /**
   * The plan versions asked for (by `plan@version`) and the latest version of each plan in
   * `latestOf` (by plan key, null for an unknown plan): held ones at once, the rest in one read.
   */
  planVersions(
    refs: Array<{ planKey: string; version: number }>,
    latestOf: string[],
  ): Promise<{ versions: Map<string, PlanVersion>; latest: Map<string, PlanVersion | null> }>;
}

/** Reads an environment's catalog; several snapshot loads of one environment share one read. */
export interface CatalogSource {
  catalog(environment: string): Promise<EnvironmentCatalog>;
}

/**
 * Loads an environment's catalog once, always from the primary, and keeps it until the catalog or
 * the settings change (`invalidate`, called with the snapshot cache's environment invalidation):
 * a snapshot load then reads only the customer's own rows. Plan versions are immutable once
 * published, so each is loaded the first time a snapshot needs it; "the latest version of a plan"
 * changes only with a catalog change, which starts a new catalog.
 */
export class CatalogCache implements CatalogSource {
  private readonly entries = new Map<string, { loading: Promise<EnvironmentCatalog>; until: number }>();

  /** `ttlMs`: how long a catalog is trusted without an invalidation (the snapshots' safety net too). */
  constructor(
    private readonly db: Db,
    private readonly ttlMs: number,
  ) {}

  catalog(environment: string): Promise<EnvironmentCatalog> {
    const now = performance.now();
    const entry = this.entries.get(environment);
    if (entry && now < entry.until) return entry.loading;
    const loading = loadEnvironmentCatalog(this.db, environment);
    this.entries.set(environment, { loading, until: now + this.ttlMs });
    // A failed read is not kept: the next load tries again.
    loading.catch(() => {
      if (this.entries.get(environment)?.loading === loading) this.entries.delete(environment);
    });
    return loading;
  }

  invalidate(environment: string): void {
    this.entries.delete(environment);
  }
}

/** The catalog of one environment, read now (the cache keeps it; an uncached load reads it per snapshot). */
export async function loadEnvironmentCatalog(db: Db, environment: string): Promise<EnvironmentCatalog> {
  const [loadedFeatures, settings] = await Promise.all([
    loadFeatures(db, environment),
    readSettings(db, environment),
  ]);
  const features = internFeatures(loadedFeatures);
  const heldVersions = new Map<string, PlanVersion>();
  const heldLatest = new Map<string, PlanVersion | null>();
  const planVersions: EnvironmentCatalog['planVersions'] = async (refs, latestOf) => {
    const versions = new Map<string, PlanVersion>();
    const latest = new Map<string, PlanVersion | null>();
    const missing: Array<{ planKey: string; version: number }> = [];
    for (const ref of refs) {
      const key = `${ref.planKey}@${ref.version}`;
      const held = heldVersions.get(key);
      if (held) versions.set(key, held);
      else missing.push(ref);
    }
    const missingLatest: string[] = [];
    for (const planKey of latestOf) {
      const held = heldLatest.get(planKey);
      if (held !== undefined) latest.set(planKey, held);
      else missingLatest.push(planKey);
    }
    if (missing.length === 0 && missingLatest.length === 0) return { versions, latest };
    const [found, newest] = await Promise.all([
      loadPlanVersions(db, environment, missing, features),
      Promise.all(missingLatest.map((planKey) => latestPlanVersion(db, environment, planKey, features))),
    ]);
    for (const [key, plan] of found) {
      const shared = internPlanVersion(plan);
      versions.set(key, shared);
      if (heldVersions.size < MAX_PLAN_VERSIONS) heldVersions.set(key, shared);
    }
    missingLatest.forEach((planKey, i) => {
      const plan = newest[i] ? internPlanVersion(newest[i]) : null;
      latest.set(planKey, plan);
      if (heldLatest.size < MAX_PLAN_VERSIONS) heldLatest.set(planKey, plan);
    });
    return { versions, latest };
  };
  const fallbackPlan = settings.fallback_plan
    ? ((await planVersions([], [settings.fallback_plan])).latest.get(settings.fallback_plan) ?? null)
    : null;
  return {
    features,
    policy: { pastDueGraceMs: settings.past_due_grace_days * DAY_MS, fallbackPlan },
    planVersions,
  };
}
