/** Plan reads: a plan at its latest or at a given version, and the list of plans. */
import { type Ctx, reader, requireScope, type TxCtx } from '../../platform/context.ts';
import { NotFound } from '../../platform/errors.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import type {
  PlanResource,
  PlanWithVersions,
  StoredEntitlement,
  StoredStripe,
  StoredTrial,
} from './plan-schema.ts';
import { findPlan, findPlanVersionRow, type PlanRow, type PlanVersionRow } from './repo.ts';

export function toPlanResource(plan: PlanRow, version: PlanVersionRow): PlanResource {
  return {
    id: plan.id,
    key: plan.key,
    name: plan.name,
    description: plan.description,
    addon: plan.addon,
    archived: plan.archived_at !== null,
    version: version.version,
    version_created_at: version.created_at.toISOString(),
    trial: version.trial as StoredTrial | null,
    entitlements: version.entitlements as StoredEntitlement[],
    stripe: version.stripe as StoredStripe | null,
    created_at: plan.created_at.toISOString(),
    updated_at: plan.updated_at.toISOString(),
  };
}

export async function versionRow(ctx: Ctx | TxCtx, key: string, version: number): Promise<PlanVersionRow> {
  const row = await findPlanVersionRow(reader(ctx), ctx.environment, key, version);
  if (!row) throw new NotFound('plan_version', `${key}@${version}`);
  return row;
}

export async function getPlan(ctx: Ctx, key: string): Promise<PlanWithVersions> {
  requireScope(ctx, 'admin');
  const db = reader(ctx);
  const plan = await findPlan(db, ctx.environment, key);
  if (!plan) throw new NotFound('plan', key);
  const [latest, versions] = await Promise.all([
    versionRow(ctx, key, plan.latest_version),
    db
      .selectFrom('plan_versions')
      .select(['version', 'created_at'])
      .where('environment', '=', ctx.environment)
      .where('plan_key', '=', key)
      .orderBy('version')
      .execute(),
  ]);
  return {
    ...toPlanResource(plan, latest),
    versions: versions.map((v) => ({ version: v.version, created_at: v.created_at.toISOString() })),
  };
}

export async function getPlanVersion(ctx: Ctx, key: string, version: number): Promise<PlanResource> {
  requireScope(ctx, 'admin');
  const plan = await findPlan(reader(ctx), ctx.environment, key);
  if (!plan) throw new NotFound('plan', key);
  return toPlanResource(plan, await versionRow(ctx, key, version));
}

export async function listPlans(
  ctx: Ctx,
  query: {
    limit: number;
    cursor?: string | undefined;
    archived?: 'true' | 'false';
    addon?: 'true' | 'false';
  },
) {
  requireScope(ctx, 'admin');
  const after = decodeCursor<{ key: string }>(query.cursor, { key: 'string' });
  let q = reader(ctx)
    .selectFrom('plans as p')
    .innerJoin('plan_versions as v', (j) =>
      j
        .onRef('v.environment', '=', 'p.environment')
        .onRef('v.plan_key', '=', 'p.key')
        .onRef('v.version', '=', 'p.latest_version'),
    )
    .selectAll('p')
    .select([
      'v.plan_key',
      'v.version',
      'v.entitlements',
      'v.trial',
      'v.stripe',
      'v.created_at as v_created_at',
    ])
    .where('p.environment', '=', ctx.environment);
  if (after) q = q.where('p.key', '>', after.key);
  if (query.archived === 'true') q = q.where('p.archived_at', 'is not', null);
  if (query.archived === 'false') q = q.where('p.archived_at', 'is', null);
  if (query.addon !== undefined) q = q.where('p.addon', '=', query.addon === 'true');
  const rows = await q
    .orderBy('p.key')
    .limit(query.limit + 1)
    .execute();
  return page(
    rows,
    query.limit,
    (r) => toPlanResource(r, { ...r, environment: r.environment, created_at: r.v_created_at }),
    (r) => ({ key: r.key }),
  );
}
