import type { Selectable } from 'kysely';
import { ConditionSyntaxError, compileCondition } from '../../domain/conditions.ts';
import type { Feature, OverrideEffect } from '../../domain/types.ts';
import { type Ctx, reader, requireScope, type TxCtx, withTransaction } from '../../platform/context.ts';
import { type FieldError, NotFound, Unprocessable } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import { loadFeatures } from '../catalog/repo.ts';
import type { CreateGrantInput, CreateOverrideInput, GrantResource, OverrideResource } from './schema.ts';
import type { CreditGrantsTable, OverridesTable } from './tables.ts';

type Actor = { type: string; id: string | null; name: string | null };

export function toOverrideResource(row: Selectable<OverridesTable>, now: Date): OverrideResource {
  const effect = row.effect as unknown as OverrideEffect;
  const status =
    row.ended_at && row.ended_at <= now
      ? 'ended'
      : row.expires_at && row.expires_at <= now
        ? 'expired'
        : row.starts_at > now
          ? 'scheduled'
          : 'active';
  return {
    id: row.id,
    customer_id: row.customer_id,
    feature: row.feature,
    ...(effect.type === 'boolean' ? { enabled: effect.enabled } : {}),
    ...(effect.type === 'config' ? { value: effect.value } : {}),
    ...(effect.type === 'metered' ? { limit: effect.limit } : {}),
    condition: row.condition,
    starts_at: row.starts_at.toISOString(),
    expires_at: row.expires_at?.toISOString() ?? null,
    ended_at: row.ended_at?.toISOString() ?? null,
    status,
    reason: row.reason,
    created_by: row.created_by as unknown as Actor,
    created_at: row.created_at.toISOString(),
  };
}

export function toGrantResource(row: Selectable<CreditGrantsTable>, now: Date): GrantResource {
  const status = row.voided_at
    ? 'voided'
    : row.expires_at && row.expires_at <= now
      ? 'expired'
      : row.effective_at > now
        ? 'pending'
        : 'active';
  return {
    id: row.id,
    customer_id: row.customer_id,
    feature: row.feature,
    amount: row.amount,
    priority: row.priority,
    effective_at: row.effective_at.toISOString(),
    expires_at: row.expires_at?.toISOString() ?? null,
    voided_at: row.voided_at?.toISOString() ?? null,
    status,
    reason: row.reason,
    created_by: row.created_by as unknown as Actor,
    created_at: row.created_at.toISOString(),
  };
}

/** Locks the customer row so concurrent changes to what it holds serialise. */
export async function lockLiveCustomer(t: TxCtx, customerId: string): Promise<void> {
  const row = await t.tx
    .selectFrom('customers')
    .select('customer_id')
    .where('environment', '=', t.environment)
    .where('customer_id', '=', customerId)
    .where('deleted_at', 'is', null)
    .forUpdate()
    .executeTakeFirst();
  if (!row) throw new NotFound('customer', customerId);
}

function invalid(code: string, message: string, errors: FieldError[]): Unprocessable {
  return new Unprocessable(code, message, errors);
}

function effectFor(feature: Feature, input: CreateOverrideInput): OverrideEffect {
  const given = (['enabled', 'value', 'limit'] as const).filter((k) => input[k] !== undefined);
  const expected = feature.type === 'boolean' ? 'enabled' : feature.type === 'config' ? 'value' : 'limit';
  for (const field of given) {
    if (field !== expected) {
      throw invalid('invalid_override', `A ${feature.type} feature takes \`${expected}\`, not \`${field}\``, [
        { path: field, message: `not valid for a ${feature.type} feature; use ${expected}` },
      ]);
    }
  }
  if (given.length === 0) {
    throw invalid('invalid_override', `A ${feature.type} feature override needs \`${expected}\``, [
      { path: expected, message: 'required' },
    ]);
  }
  switch (feature.type) {
    case 'boolean':
      return { type: 'boolean', enabled: input.enabled! };
    case 'config':
      return { type: 'config', value: input.value as OverrideEffect extends { value: infer V } ? V : never };
    case 'metered':
      return { type: 'metered', limit: input.limit ?? null };
  }
}

export function validateCondition(condition: string | undefined, path: string): void {
  if (condition === undefined) return;
  try {
    compileCondition(condition);
  } catch (err) {
    if (err instanceof ConditionSyntaxError)
      throw invalid('invalid_condition', 'The condition does not compile', [{ path, message: err.message }]);
    throw err;
  }
}

function validateWindow(start: Date, end: Date | null, startPath: string, endPath: string): void {
  if (end && end <= start)
    throw invalid('invalid_window', `${endPath} must be after ${startPath}`, [
      { path: endPath, message: `must be after ${startPath}` },
    ]);
}

async function liveFeature(ctx: Ctx, key: string): Promise<Feature> {
  const feature = (await loadFeatures(reader(ctx), ctx.environment)).get(key);
  if (!feature || feature.archived)
    throw invalid('unknown_feature', `No active feature '${key}'`, [
      { path: 'feature', message: 'unknown or archived feature' },
    ]);
  return feature;
}

export async function createOverride(
  ctx: Ctx,
  customerId: string,
  input: CreateOverrideInput,
): Promise<OverrideResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    await lockLiveCustomer(t, customerId);
    const feature = await liveFeature(t, input.feature);
    const effect = effectFor(feature, input);
    validateCondition(input.condition, 'condition');
    const startsAt = input.starts_at ? new Date(input.starts_at) : t.now;
    const expiresAt = input.expires_at ? new Date(input.expires_at) : null;
    validateWindow(startsAt, expiresAt, 'starts_at', 'expires_at');
    const row = await t.tx
      .insertInto('overrides')
      .values({
        id: newId('ovr', t.now.getTime()),
        environment: ctx.environment,
        customer_id: customerId,
        feature: feature.key,
        effect: JSON.stringify(effect),
        condition: input.condition ?? null,
        starts_at: startsAt,
        expires_at: expiresAt,
        reason: input.reason,
        created_by: JSON.stringify(ctx.actor),
        created_at: t.now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const resource = toOverrideResource(row, t.now);
    t.touchCustomer(customerId);
    t.audit({
      action: 'override.created',
      target: { type: 'override', id: row.id },
      customerId,
      after: resource,
    });
    t.emit({ topic: 'override.created', customerId, payload: resource });
    return resource;
  });
}

export async function listOverrides(
  ctx: Ctx,
  customerId: string,
  query: { limit: number; cursor?: string | undefined },
) {
  requireScope(ctx, 'admin');
  const db = reader(ctx);
  await requireCustomer(ctx, customerId);
  const after = decodeCursor<{ id: string }>(query.cursor, { id: 'string' });
  let q = db
    .selectFrom('overrides')
    .selectAll()
    .where('environment', '=', ctx.environment)
    .where('customer_id', '=', customerId);
  if (after) q = q.where('id', '>', after.id);
  const rows = await q
    .orderBy('id')
    .limit(query.limit + 1)
    .execute();
  const now = ctx.deps.clock.now();
  return page(
    rows,
    query.limit,
    (r) => toOverrideResource(r, now),
    (r) => ({ id: r.id }),
  );
}

/** Ends an override now; the row stays as history with `ended_at` set. */
export async function endOverride(ctx: Ctx, id: string): Promise<OverrideResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await t.tx
      .selectFrom('overrides')
      .selectAll()
      .where('environment', '=', ctx.environment)
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    if (!before) throw new NotFound('override', id);
    const resource = toOverrideResource(before, t.now);
    if (resource.status === 'ended' || resource.status === 'expired') return resource;
    const after = await t.tx
      .updateTable('overrides')
      .set({ ended_at: t.now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const ended = toOverrideResource(after, t.now);
    t.touchCustomer(before.customer_id);
    t.audit({
      action: 'override.ended',
      target: { type: 'override', id },
      customerId: before.customer_id,
      before: resource,
      after: ended,
    });
    t.emit({ topic: 'override.ended', customerId: before.customer_id, payload: ended });
    return ended;
  });
}

export async function createGrant(
  ctx: Ctx,
  customerId: string,
  input: CreateGrantInput,
): Promise<GrantResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    await lockLiveCustomer(t, customerId);
    const feature = await liveFeature(t, input.feature);
    if (feature.type !== 'metered')
      throw invalid('invalid_grant', 'Credits apply to metered features only', [
        { path: 'feature', message: `'${feature.key}' is ${feature.type}, not metered` },
      ]);
    const effectiveAt = input.effective_at ? new Date(input.effective_at) : t.now;
    const expiresAt = input.expires_at ? new Date(input.expires_at) : null;
    validateWindow(effectiveAt, expiresAt, 'effective_at', 'expires_at');
    const row = await t.tx
      .insertInto('credit_grants')
      .values({
        id: newId('grt', t.now.getTime()),
        environment: ctx.environment,
        customer_id: customerId,
        feature: feature.key,
        amount: input.amount,
        priority: input.priority ?? 0,
        effective_at: effectiveAt,
        expires_at: expiresAt,
        reason: input.reason,
        created_by: JSON.stringify(ctx.actor),
        created_at: t.now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const resource = toGrantResource(row, t.now);
    t.touchCustomer(customerId);
    t.audit({ action: 'grant.created', target: { type: 'grant', id: row.id }, customerId, after: resource });
    t.emit({ topic: 'grant.created', customerId, payload: resource });
    return resource;
  });
}

export async function listGrants(
  ctx: Ctx,
  customerId: string,
  query: { limit: number; cursor?: string | undefined },
) {
  requireScope(ctx, 'admin');
  await requireCustomer(ctx, customerId);
  const after = decodeCursor<{ id: string }>(query.cursor, { id: 'string' });
  let q = reader(ctx)
    .selectFrom('credit_grants')
    .selectAll()
    .where('environment', '=', ctx.environment)
    .where('customer_id', '=', customerId);
  if (after) q = q.where('id', '>', after.id);
  const rows = await q
    .orderBy('id')
    .limit(query.limit + 1)
    .execute();
  const now = ctx.deps.clock.now();
  return page(
    rows,
    query.limit,
    (r) => toGrantResource(r, now),
    (r) => ({ id: r.id }),
  );
}

/** Voids a grant now: its remaining credit stops counting; what it already paid for stays paid. */
export async function voidGrant(ctx: Ctx, id: string): Promise<GrantResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await t.tx
      .selectFrom('credit_grants')
      .selectAll()
      .where('environment', '=', ctx.environment)
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    if (!before) throw new NotFound('grant', id);
    if (before.voided_at) return toGrantResource(before, t.now);
    const after = await t.tx
      .updateTable('credit_grants')
      .set({ voided_at: t.now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    t.touchCustomer(before.customer_id);
    t.audit({
      action: 'grant.voided',
      target: { type: 'grant', id },
      customerId: before.customer_id,
      before: toGrantResource(before, t.now),
      after: toGrantResource(after, t.now),
    });
    return toGrantResource(after, t.now);
  });
}

async function requireCustomer(ctx: Ctx, customerId: string): Promise<void> {
  const row = await reader(ctx)
    .selectFrom('customers')
    .select('customer_id')
    .where('environment', '=', ctx.environment)
    .where('customer_id', '=', customerId)
    .where('deleted_at', 'is', null)
    .executeTakeFirst();
  if (!row) throw new NotFound('customer', customerId);
}
