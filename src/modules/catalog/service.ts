/** Feature verbs; plan verbs live in plan-service.ts and plan-reads.ts and are re-exported here. */
import { type Ctx, reader, requireScope, type TxCtx, withTransaction } from '../../platform/context.ts';
import { Conflict, NotFound, Unprocessable } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import { recordCatalogChange } from './changes.ts';
import { type FeatureRow, findFeature } from './repo.ts';
import type { CreateFeatureInput, FeatureResource, UpdateFeatureInput } from './schema.ts';

export { getPlan, getPlanVersion, listPlans } from './plan-reads.ts';
export { archivePlan, createPlan, createPlanVersion, updatePlan } from './plan-service.ts';

export function toFeatureResource(row: FeatureRow): FeatureResource {
  return {
    id: row.id,
    key: row.key,
    name: row.name,
    type: row.type as FeatureResource['type'],
    unit: row.unit,
    description: row.description,
    aggregation: row.type === 'metered' ? (row.aggregation as FeatureResource['aggregation']) : null,
    stripe_meter: row.stripe_meter ? { event_name: row.stripe_meter.event_name } : null,
    archived: row.archived_at !== null,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

export async function createFeature(ctx: Ctx, input: CreateFeatureInput): Promise<FeatureResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const row = await t.tx
      .insertInto('features')
      .values({
        environment: ctx.environment,
        key: input.key,
        id: newId('feat', t.now.getTime()),
        name: input.name,
        type: input.type,
        unit: input.unit ?? null,
        description: input.description ?? null,
        aggregation: input.aggregation ?? 'sum',
        stripe_meter: input.stripe_meter ? JSON.stringify(input.stripe_meter) : null,
        created_at: t.now,
        updated_at: t.now,
      })
      .onConflict((oc) => oc.columns(['environment', 'key']).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new Conflict('feature_exists', `A feature with key '${input.key}' already exists`);
    const feature = toFeatureResource(row);
    recordCatalogChange(t, {
      action: 'feature.created',
      target: { type: 'feature', id: row.id, key: row.key },
      after: feature,
    });
    return feature;
  });
}

export async function listFeatures(
  ctx: Ctx,
  query: { limit: number; cursor?: string | undefined; archived?: 'true' | 'false' | undefined },
) {
  requireScope(ctx, 'admin');
  const after = decodeCursor<{ key: string }>(query.cursor, { key: 'string' });
  let q = reader(ctx).selectFrom('features').selectAll().where('environment', '=', ctx.environment);
  if (after) q = q.where('key', '>', after.key);
  if (query.archived === 'true') q = q.where('archived_at', 'is not', null);
  if (query.archived === 'false') q = q.where('archived_at', 'is', null);
  const rows = await q
    .orderBy('key')
    .limit(query.limit + 1)
    .execute();
  return page(rows, query.limit, toFeatureResource, (r) => ({ key: r.key }));
}

export async function getFeature(ctx: Ctx, key: string): Promise<FeatureResource> {
  requireScope(ctx, 'admin');
  const row = await findFeature(reader(ctx), ctx.environment, key);
  if (!row) throw new NotFound('feature', key);
  return toFeatureResource(row);
}

async function lockFeature(t: TxCtx, key: string): Promise<FeatureRow> {
  const row = await t.tx
    .selectFrom('features')
    .selectAll()
    .where('environment', '=', t.environment)
    .where('key', '=', key)
    .forUpdate()
    .executeTakeFirst();
  if (!row) throw new NotFound('feature', key);
  return row;
}

export async function updateFeature(
  ctx: Ctx,
  key: string,
  input: UpdateFeatureInput,
): Promise<FeatureResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await lockFeature(t, key);
    if (input.stripe_meter && before.type !== 'metered') {
      throw new Unprocessable('not_metered', `Feature '${key}' is not metered`, [
        { path: 'stripe_meter', message: 'stripe_meter applies to metered features only' },
      ]);
    }
    const meter = input.stripe_meter === undefined ? undefined : input.stripe_meter;
    const meterChanged =
      meter !== undefined && JSON.stringify(meter) !== JSON.stringify(before.stripe_meter ?? null);
    const changes = {
      ...(meterChanged ? { stripe_meter: meter ? JSON.stringify(meter) : null } : {}),
      ...(input.name !== undefined && input.name !== before.name ? { name: input.name } : {}),
      ...(input.description !== undefined && input.description !== before.description
        ? { description: input.description }
        : {}),
      ...(input.unit !== undefined && input.unit !== before.unit ? { unit: input.unit } : {}),
    };
    if (Object.keys(changes).length === 0) return toFeatureResource(before);
    const row = await t.tx
      .updateTable('features')
      .set({ ...changes, updated_at: t.now })
      .where('environment', '=', t.environment)
      .where('key', '=', key)
      .returningAll()
      .executeTakeFirstOrThrow();
    const feature = toFeatureResource(row);
    recordCatalogChange(t, {
      action: 'feature.updated',
      target: { type: 'feature', id: row.id, key },
      before: toFeatureResource(before),
      after: feature,
    });
    return feature;
  });
}

/**
 * Archiving is one-way and idempotent: plans already naming the feature keep working (their
 * subscribers keep what they bought), but no new plan version may name it.
 */
export async function archiveFeature(ctx: Ctx, key: string): Promise<FeatureResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await lockFeature(t, key);
    if (before.archived_at) return toFeatureResource(before);
    const row = await t.tx
      .updateTable('features')
      .set({ archived_at: t.now, updated_at: t.now })
      .where('environment', '=', t.environment)
      .where('key', '=', key)
      .returningAll()
      .executeTakeFirstOrThrow();
    const feature = toFeatureResource(row);
    recordCatalogChange(t, {
      action: 'feature.archived',
      target: { type: 'feature', id: row.id, key },
      before: toFeatureResource(before),
      after: feature,
    });
    return feature;
  });
}
