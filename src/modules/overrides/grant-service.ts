import { type GrantBalances, remainingOf } from '../../domain/burn-down.ts';
import { type Ctx, requireScope, withTransaction } from '../../platform/context.ts';
import { NotFound } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { listHeld } from './list-held.ts';
import { lockHeldRow, lockLiveCustomer, toGrant } from './repo.ts';
import { toGrantResource } from './resources.ts';
import type { CreateGrantInput, GrantResource } from './schema.ts';
import { invalid, liveFeature, validateWindow } from './validation.ts';

/** Credits for a metered feature, used up before overage in burn-down order (see BURN-DOWN.md). */
export async function createGrant(
  ctx: Ctx,
  customerId: string,
  input: CreateGrantInput,
): Promise<GrantResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    await lockLiveCustomer(t.tx, ctx.environment, customerId);
    const feature = await liveFeature(t, input.feature);
    if (feature.type !== 'metered') {
      throw invalid('invalid_grant', 'Credits apply to metered features only', [
        { path: 'feature', message: `'${feature.key}' is ${feature.type}, not metered` },
      ]);
    }
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

/**
 * A page of the customer's grants, each with `remaining`: what it has left to pay with now, from
 * the same resolution checks use (the feature's credit used, drawn through the burn-down, or the
 * exact per-grant balances metering keeps). See `remainingOf` in src/domain/burn-down.ts.
 */
export async function listGrants(
  ctx: Ctx,
  customerId: string,
  query: { limit: number; cursor?: string | undefined },
) {
  const now = ctx.deps.clock.now();
  const page = await listHeld(ctx, 'credit_grants', customerId, query, (row) => ({
    row,
    resource: toGrantResource(row, now),
  }));
  const resolved = await ctx.deps.services.decisions.resolve(ctx.environment, customerId, now);
  const balancesOf = (feature: string): GrantBalances => {
    const entitlement = resolved.entitlements.get(feature);
    // A feature nobody holds now reads no usage, so nothing has drawn its grants.
    return entitlement?.type === 'metered' ? entitlement.credit.balances : {};
  };
  return {
    data: page.data.map(({ row, resource }) => ({
      ...resource,
      remaining: remainingOf(toGrant(row), balancesOf(row.feature), now),
    })),
    next_cursor: page.next_cursor,
  };
}

/** Voids a grant now: its remaining credit stops counting; what it already paid for stays paid. */
export async function voidGrant(ctx: Ctx, id: string): Promise<GrantResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await lockHeldRow(t.tx, 'credit_grants', ctx.environment, id);
    if (!before) throw new NotFound('grant', id);
    if (before.voided_at) return toGrantResource(before, t.now);
    const after = await t.tx
      .updateTable('credit_grants')
      .set({ voided_at: t.now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const voided = toGrantResource(after, t.now);
    t.touchCustomer(before.customer_id);
    t.audit({
      action: 'grant.voided',
      target: { type: 'grant', id },
      customerId: before.customer_id,
      before: toGrantResource(before, t.now),
      after: voided,
    });
    t.emit({ topic: 'grant.voided', customerId: before.customer_id, payload: voided });
    return voided;
  });
}
