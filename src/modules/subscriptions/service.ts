/**
 * Starting, reading and ending subscriptions (commands on one subscription are in commands.ts).
 * Every answer shows the state at `now`, derived by stateAt from the stored row.
 */
import { applyEvent, startSubscription, stateAt } from '../../domain/subscription-state.ts';
import type { PlanVersion } from '../../domain/types.ts';
import { type Ctx, reader, requireScope, type TxCtx, withTransaction } from '../../platform/context.ts';
import { Conflict, NotFound, Unprocessable } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import { getCustomerRow, lockCustomerRow } from '../customers/repo.ts';
import { type EnvironmentSettings, readSettings } from '../settings/repo.ts';
import { catchUpFirst, catchUpRow } from './catch-up.ts';
import { recordSubscriptionChange } from './changes.ts';
import { planLookupFor, resolveTargetPlan } from './plans.ts';
import {
  findSubscription,
  hasTrialled,
  insertSubscription,
  listCustomerSubscriptions,
  loadStoredLiveSubscriptions,
  lockSubscription,
  saveSubscription,
  toSubscription,
} from './repo.ts';
import { isLive, toSubscriptionResource } from './resource.ts';
import type { CreateSubscriptionInput, SubscriptionResource } from './schema.ts';

function baseExists(customerId: string, detail = ''): Conflict {
  return new Conflict(
    'base_plan_exists',
    `Customer '${customerId}' already has a live base plan${detail}: change it instead (POST /v1/subscriptions/{id}/change)`,
  );
}

function isOneBaseViolation(err: unknown): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | null;
  return e?.code === '23505' && e.constraint === 'subscriptions_one_base';
}

/** Under the customer lock: a live base plan (at `now`, not merely as stored) refuses a second one. */
async function assertNoLiveBasePlan(t: TxCtx, customerId: string): Promise<void> {
  const stored = await loadStoredLiveSubscriptions(t.tx, t.environment, customerId);
  for (const sub of stored.filter((s) => !s.addon)) {
    const row = await lockSubscription(t.tx, t.environment, sub.id);
    if (!row) continue;
    // Persists an ended trial or period first, so the one-base index sees the truth.
    const { state } = await catchUpRow(t, row);
    if (isLive(state)) throw baseExists(customerId, ` ('${state.planKey}', subscription ${state.id})`);
  }
}

interface Trial {
  days: number;
  onEnd: 'convert' | 'cancel' | 'downgrade';
  downgradeTo: string | null;
}

/**
 * The plan's trial, with `trial_days` overriding its length (0: none). Without repeat trials, a
 * customer who trialled this plan before gets none: 409 when the trial was asked for explicitly,
 * silently none when it only came from the plan.
 */
async function trialFor(
  t: TxCtx,
  customerId: string,
  plan: PlanVersion,
  input: CreateSubscriptionInput,
  settings: EnvironmentSettings,
): Promise<Trial | null> {
  const days = input.trial_days ?? plan.trial?.days ?? 0;
  if (days === 0) return null;
  if (!settings.allow_repeat_trials && (await hasTrialled(t.tx, t.environment, customerId, plan.planKey))) {
    if (input.trial_days === undefined) return null;
    throw new Conflict(
      'trial_already_used',
      `Customer '${customerId}' already had a trial of '${plan.planKey}'`,
    );
  }
  const onEnd = plan.trial?.onEnd ?? 'convert';
  const downgradeTo = plan.trial?.downgradeTo ?? null;
  if (onEnd === 'downgrade' && downgradeTo === null) {
    throw new Unprocessable(
      'invalid_trial',
      `Plan '${plan.planKey}' downgrades after its trial but names no plan`,
      [{ path: 'plan', message: 'its trial has on_end downgrade without downgrade_to' }],
    );
  }
  return { days, onEnd, downgradeTo };
}

export async function createSubscription(
  ctx: Ctx,
  customerId: string,
  input: CreateSubscriptionInput,
): Promise<SubscriptionResource> {
  requireScope(ctx, 'admin');
  await catchUpFirst(ctx, await loadStoredLiveSubscriptions(reader(ctx), ctx.environment, customerId));
  try {
    return await withTransaction(ctx, async (t) => {
      const customer = await lockCustomerRow(t.tx, t.environment, customerId);
      if (!customer || customer.deleted_at) throw new NotFound('customer', customerId);
      const { plan } = await resolveTargetPlan(t.tx, t.environment, input.plan, input.plan_version);
      if (!plan.addon) await assertNoLiveBasePlan(t, customerId);
      const trial = await trialFor(t, customerId, plan, input, await readSettings(t.tx, t.environment));
      const started = startSubscription(
        {
          id: newId('sub', t.now.getTime()),
          customerId,
          planKey: plan.planKey,
          planVersion: plan.version,
          addon: plan.addon,
          quantity: input.quantity ?? 1,
          trialDays: trial?.days ?? null,
          trialOnEnd: trial?.onEnd ?? null,
          trialDowngradeTo: trial?.downgradeTo ?? null,
          startsAt: input.starts_at ? new Date(input.starts_at) : t.now,
        },
        t.now,
      );
      // A backdated start is stored as it is now: what happened before it existed is not replayed.
      const sub = stateAt(started, t.now, await planLookupFor(t.tx, t.environment, [started]));
      await insertSubscription(t.tx, t.environment, sub, t.now);
      recordSubscriptionChange(t, 'subscription.created', null, sub);
      return toSubscriptionResource(sub);
    });
  } catch (err) {
    // The customer lock makes this unreachable in practice; the index is the last word.
    if (isOneBaseViolation(err)) throw baseExists(customerId);
    throw err;
  }
}

export async function getSubscription(ctx: Ctx, id: string): Promise<SubscriptionResource> {
  requireScope(ctx, 'admin');
  const db = reader(ctx);
  const row = await findSubscription(db, ctx.environment, id);
  if (!row) throw new NotFound('subscription', id);
  const stored = toSubscription(row);
  const plans = await planLookupFor(db, ctx.environment, [stored]);
  return toSubscriptionResource(stateAt(stored, ctx.deps.clock.now(), plans));
}

export async function listSubscriptions(
  ctx: Ctx,
  customerId: string,
  query: { limit: number; cursor?: string | undefined },
): Promise<{ data: SubscriptionResource[]; next_cursor: string | null }> {
  requireScope(ctx, 'admin');
  const db = reader(ctx);
  if (!(await getCustomerRow(db, ctx.environment, customerId))) throw new NotFound('customer', customerId);
  const after = decodeCursor<{ id: string }>(query.cursor, { id: 'string' });
  const rows = await listCustomerSubscriptions(db, ctx.environment, customerId, {
    limit: query.limit,
    afterId: after?.id,
  });
  const stored = rows.map(toSubscription);
  const plans = await planLookupFor(db, ctx.environment, stored);
  const now = ctx.deps.clock.now();
  return page(
    stored,
    query.limit,
    (s) => toSubscriptionResource(stateAt(s, now, plans)),
    (s) => ({ id: s.id }),
  );
}

/**
 * A customer deletion hook: ends the customer's live subscriptions now, inside the deletion's
 * transaction (which holds the customer lock). Time-driven transitions still due are persisted
 * first, credited to the deletion's actor since they share its transaction.
 */
export async function endCustomerSubscriptions(t: TxCtx, customerId: string): Promise<void> {
  for (const sub of await loadStoredLiveSubscriptions(t.tx, t.environment, customerId)) {
    const row = await lockSubscription(t.tx, t.environment, sub.id);
    if (!row) continue;
    const { state, plans } = await catchUpRow(t, row);
    if (!isLive(state)) continue;
    const ended = applyEvent(state, { type: 'cancel_now' }, t.now, plans);
    await saveSubscription(t.tx, t.environment, ended, t.now);
    recordSubscriptionChange(t, 'subscription.canceled', state, ended, { reason: 'customer_deleted' });
  }
}
