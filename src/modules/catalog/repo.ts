/**
 * Catalog reads, and the mapping of stored rows to the domain types the decision engine uses.
 * Plan versions store their entitlements in API shape (snake_case, defaults filled in at write);
 * an entry's kind comes from its feature's type, which never changes once the feature exists.
 */
import { type Selectable, sql } from 'kysely';
import type {
  Aggregation,
  Feature,
  FeatureType,
  JsonValue,
  PlanEntitlement,
  PlanVersion,
  TrialEnd,
} from '../../domain/types.ts';
import type { Executor } from '../../platform/db.ts';
import type { StoredEntitlement, StoredTrial } from './plan-schema.ts';
import type { FeaturesTable, PlansTable, PlanVersionsTable } from './tables.ts';

export type FeatureRow = Selectable<FeaturesTable>;
export type PlanRow = Selectable<PlansTable>;
export type PlanVersionRow = Selectable<PlanVersionsTable>;

export function toDomainFeature(row: FeatureRow): Feature {
  return {
    key: row.key,
    name: row.name,
    type: row.type as FeatureType,
    unit: row.unit,
    description: row.description,
    aggregation: row.aggregation as Aggregation,
    archived: row.archived_at !== null,
  };
}

/** Every feature of the environment, archived ones included (plans and overrides may still name them). */
export async function loadFeatures(db: Executor, environment: string): Promise<Map<string, Feature>> {
  const rows = await db.selectFrom('features').selectAll().where('environment', '=', environment).execute();
  return new Map(rows.map((r) => [r.key, toDomainFeature(r)]));
}

/** The shape says the kind only when the feature is missing, which validation on save rules out. */
function kindOf(entry: StoredEntitlement, type: FeatureType | undefined): FeatureType {
  if (type) return type;
  if ('limit' in entry || 'reset' in entry) return 'metered';
  return 'value' in entry ? 'config' : 'boolean';
}

export function toDomainEntitlement(
  entry: StoredEntitlement,
  type: FeatureType | undefined,
): PlanEntitlement {
  const base = { feature: entry.feature, condition: entry.condition ?? null };
  switch (kindOf(entry, type)) {
    case 'boolean':
      return { ...base, type: 'boolean', enabled: entry.enabled ?? true };
    case 'config':
      return { ...base, type: 'config', value: (entry.value ?? null) as JsonValue };
    case 'metered':
      return {
        ...base,
        type: 'metered',
        limit: entry.limit ?? null,
        reset: entry.reset ?? 'none',
        overage: entry.overage ?? 'deny',
        notifyAtPercent: entry.notify_at_percent ?? [],
        perSeat: entry.per_seat ?? false,
      };
  }
}

export function toDomainPlanVersion(
  plan: Pick<PlanRow, 'key' | 'addon'>,
  version: PlanVersionRow,
  features: Map<string, Feature>,
): PlanVersion {
  const trial = version.trial as StoredTrial | null;
  return {
    planKey: plan.key,
    version: version.version,
    addon: plan.addon,
    trial: trial
      ? { days: trial.days, onEnd: trial.on_end as TrialEnd, downgradeTo: trial.downgrade_to ?? null }
      : null,
    entitlements: (version.entitlements as StoredEntitlement[]).map((e) =>
      toDomainEntitlement(e, features.get(e.feature)?.type),
    ),
  };
}

async function featuresFor(
  db: Executor,
  environment: string,
  versions: PlanVersionRow[],
  known?: Map<string, Feature>,
): Promise<Map<string, Feature>> {
  if (known) return known;
  const keys = [
    ...new Set(versions.flatMap((v) => (v.entitlements as StoredEntitlement[]).map((e) => e.feature))),
  ];
  if (keys.length === 0) return new Map();
  const rows = await db
    .selectFrom('features')
    .selectAll()
    .where('environment', '=', environment)
    .where('key', 'in', keys)
    .execute();
  return new Map(rows.map((r) => [r.key, toDomainFeature(r)]));
}

/** Versions of several plans at once, keyed `${planKey}@${version}` as CustomerSnapshot wants them. */
export async function loadPlanVersions(
  db: Executor,
  environment: string,
  refs: Array<{ planKey: string; version: number }>,
  features?: Map<string, Feature>,
): Promise<Map<string, PlanVersion>> {
  const out = new Map<string, PlanVersion>();
  if (refs.length === 0) return out;
  const rows = await db
    .selectFrom('plan_versions as v')
    .innerJoin('plans as p', (j) =>
      j.onRef('p.environment', '=', 'v.environment').onRef('p.key', '=', 'v.plan_key'),
    )
    .selectAll('v')
    .select(['p.key', 'p.addon'])
    .where('v.environment', '=', environment)
    .where((eb) =>
      eb.or(refs.map((r) => eb.and([eb('v.plan_key', '=', r.planKey), eb('v.version', '=', r.version)]))),
    )
    .execute();
  const catalog = await featuresFor(db, environment, rows, features);
  for (const row of rows) out.set(`${row.plan_key}@${row.version}`, toDomainPlanVersion(row, row, catalog));
  return out;
}

export async function loadPlanVersion(
  db: Executor,
  environment: string,
  planKey: string,
  version: number,
  features?: Map<string, Feature>,
): Promise<PlanVersion | null> {
  const found = await loadPlanVersions(db, environment, [{ planKey, version }], features);
  return found.get(`${planKey}@${version}`) ?? null;
}

/** The newest version of a plan (archived plans included: their subscribers still hold them). */
export async function latestPlanVersion(
  db: Executor,
  environment: string,
  planKey: string,
  features?: Map<string, Feature>,
): Promise<PlanVersion | null> {
  const plan = await findPlan(db, environment, planKey);
  if (!plan) return null;
  return loadPlanVersion(db, environment, planKey, plan.latest_version, features);
}

export async function findFeature(db: Executor, environment: string, key: string) {
  return db
    .selectFrom('features')
    .selectAll()
    .where('environment', '=', environment)
    .where('key', '=', key)
    .executeTakeFirst();
}

export async function findPlan(db: Executor, environment: string, key: string) {
  return db
    .selectFrom('plans')
    .selectAll()
    .where('environment', '=', environment)
    .where('key', '=', key)
    .executeTakeFirst();
}

export async function findPlanVersionRow(
  db: Executor,
  environment: string,
  planKey: string,
  version: number,
) {
  return db
    .selectFrom('plan_versions')
    .selectAll()
    .where('environment', '=', environment)
    .where('plan_key', '=', planKey)
    .where('version', '=', version)
    .executeTakeFirst();
}

/**
 * The plan whose latest version lists this Stripe price id (or lookup key), for billing sync.
 * When several do (the catalog does not forbid it), the oldest plan wins.
 */
export async function findPlanByStripeReference(
  db: Executor,
  environment: string,
  ref: { priceId?: string; lookupKey?: string },
): Promise<{ planKey: string; version: number } | null> {
  const probe =
    ref.priceId !== undefined ? { price_ids: [ref.priceId] } : { lookup_keys: [ref.lookupKey ?? ''] };
  const row = await db
    .selectFrom('plans as p')
    .innerJoin('plan_versions as v', (j) =>
      j
        .onRef('v.environment', '=', 'p.environment')
        .onRef('v.plan_key', '=', 'p.key')
        .onRef('v.version', '=', 'p.latest_version'),
    )
    .select(['p.key', 'p.latest_version'])
    .where('p.environment', '=', environment)
    .where(sql<boolean>`v.stripe @> ${JSON.stringify(probe)}::jsonb`)
    .orderBy('p.created_at')
    .limit(1)
    .executeTakeFirst();
  return row ? { planKey: row.key, version: row.latest_version } : null;
}
