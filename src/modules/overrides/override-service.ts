import { type Ctx, requireScope, withTransaction } from '../../platform/context.ts';
import { NotFound } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { listHeld } from './list-held.ts';
import { lockHeldRow, lockLiveCustomer } from './repo.ts';
import { toOverrideResource } from './resources.ts';
import type { CreateOverrideInput, OverrideResource } from './schema.ts';
import { effectFor, liveFeature, validateCondition, validateWindow } from './validation.ts';

/** Per-customer exceptions: time-boxed by starts_at/expires_at, ended (never deleted) by DELETE. */
export async function createOverride(
  ctx: Ctx,
  customerId: string,
  input: CreateOverrideInput,
): Promise<OverrideResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    await lockLiveCustomer(t.tx, ctx.environment, customerId);
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

export function listOverrides(
  ctx: Ctx,
  customerId: string,
  query: { limit: number; cursor?: string | undefined },
) {
  return listHeld(ctx, 'overrides', customerId, query, toOverrideResource);
}

/** Ends an override now; the row stays as history with `ended_at` set. */
export async function endOverride(ctx: Ctx, id: string): Promise<OverrideResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await lockHeldRow(t.tx, 'overrides', ctx.environment, id);
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
