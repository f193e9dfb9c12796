/**
 * Commands on one subscription. Each runs in one transaction: lock the customer row, then the
 * subscription row; bring the subscription to its state at `now` (persisting what time did first);
 * apply the command to that state; save; audit; emit; bump the customer's version. A command that
 * would change nothing records nothing and answers the current state.
 */
import { createHash } from 'node:crypto';
import {
  applyEvent,
  IllegalTransitionError,
  type PlanLookup,
  type SubscriptionEvent,
} from '../../domain/subscription-state.ts';
import type { Subscription } from '../../domain/types.ts';
import { type Ctx, reader, requireScope, type TxCtx, withTransaction } from '../../platform/context.ts';
import { NotFound, Unprocessable } from '../../platform/errors.ts';
import { lockCustomerRow } from '../customers/repo.ts';
import { catchUpFirst, catchUpRow } from './catch-up.ts';
import { asTransitionConflict, recordSubscriptionChange } from './changes.ts';
import type { LifecycleChange } from './lifecycle.ts';
import { resolveTargetPlan } from './plans.ts';
import { findSubscription, lockSubscription, saveSubscription, toSubscription } from './repo.ts';
import { isLive, sameStoredState, toSubscriptionResource } from './resource.ts';
import type { ChangeSubscriptionInput, SubscriptionResource } from './schema.ts';

type Timing = 'immediate' | 'period_end';

interface Command {
  action: string;
  /** The next state; may throw IllegalTransitionError (a 409) or an AppError. */
  next(current: Subscription, t: TxCtx, plans: PlanLookup): Subscription | Promise<Subscription>;
  /** What to push to the billing system (services.lifecycle) before the change commits. */
  push?(current: Subscription, next: Subscription): LifecycleChange;
  /** The request as the caller sent it, and its Idempotency-Key: they key the push. */
  input?: unknown;
  requestKey?: string | undefined;
}

/**
 * The Stripe idempotency key of a push: the subscription, the command, a hash of the input, the
 * stored state it starts from and the caller's Idempotency-Key (else this request's id). A retry
 * with the same Idempotency-Key gets Stripe's answer to the first try; a new request is a new try.
 */
function pushKey(ctx: Ctx, id: string, command: Command, storedAt: Date): string {
  const attempt = command.requestKey ?? `request:${ctx.requestId ?? ''}`;
  const hash = createHash('sha256')
    .update(JSON.stringify([command.input ?? null, storedAt.toISOString(), attempt]))
    .digest('hex')
    .slice(0, 32);
  return `tessera:${id}:${command.action}:${hash}`;
}

async function runCommand(ctx: Ctx, id: string, command: Command): Promise<SubscriptionResource> {
  requireScope(ctx, 'admin');
  const found = await findSubscription(reader(ctx), ctx.environment, id);
  if (!found) throw new NotFound('subscription', id);
  await catchUpFirst(ctx, [toSubscription(found)]);
  return withTransaction(ctx, async (t) => {
    await lockCustomerRow(t.tx, t.environment, found.customer_id);
    const row = await lockSubscription(t.tx, t.environment, id);
    if (!row) throw new NotFound('subscription', id);
    const { state: current, plans } = await catchUpRow(t, row);
    const next = await asTransitionConflict(() => command.next(current, t, plans));
    if (sameStoredState(current, next)) return toSubscriptionResource(current);
    if (command.push) {
      // Before Tessera's own change: a refusal throws and the transaction writes nothing.
      await ctx.deps.services.lifecycle.push(t, {
        subscriptionId: id,
        customerId: current.customerId,
        stripe: current.stripe ?? null,
        change: command.push(current, next),
        idempotencyKey: pushKey(ctx, id, command, row.updated_at),
      });
    }
    await saveSubscription(t.tx, t.environment, next, t.now);
    recordSubscriptionChange(t, command.action, current, next);
    return toSubscriptionResource(next);
  });
}

function event(action: string, e: SubscriptionEvent): Command {
  return { action, next: (current, t, plans) => applyEvent(current, e, t.now, plans) };
}

export const pauseSubscription = (ctx: Ctx, id: string) =>
  runCommand(ctx, id, event('subscription.paused', { type: 'pause' }));

export const resumeSubscription = (ctx: Ctx, id: string) =>
  runCommand(ctx, id, event('subscription.resumed', { type: 'resume' }));

export const recordPaymentFailed = (ctx: Ctx, id: string) =>
  runCommand(ctx, id, event('subscription.payment_failed', { type: 'payment_failed' }));

export const recordPaymentRecovered = (ctx: Ctx, id: string) =>
  runCommand(ctx, id, event('subscription.payment_recovered', { type: 'payment_recovered' }));

/** Ends the trial now and starts paying: the billing anchor moves to now. */
export const convertTrial = (ctx: Ctx, id: string) =>
  runCommand(ctx, id, event('subscription.converted', { type: 'convert' }));

/** In Stripe (when Tessera leads): the item's price goes back to the current plan's. */
export const cancelScheduledChange = (ctx: Ctx, id: string) =>
  runCommand(ctx, id, {
    ...event('subscription.change_unscheduled', { type: 'cancel_scheduled_change' }),
    push: (current) => ({
      kind: 'change',
      planKey: current.planKey,
      planVersion: current.planVersion,
      timing: 'period_end',
    }),
  });

export const undoCancelAtPeriodEnd = (ctx: Ctx, id: string) =>
  runCommand(ctx, id, {
    ...event('subscription.uncanceled', { type: 'undo_cancel_at_period_end' }),
    push: () => ({ kind: 'uncancel' }),
  });

/** Pushed to Stripe first when Tessera leads the lifecycle (`requestKey`: the Idempotency-Key header). */
export function cancelSubscription(ctx: Ctx, id: string, timing: Timing, requestKey?: string) {
  const command =
    timing === 'immediate'
      ? event('subscription.canceled', { type: 'cancel_now' })
      : event('subscription.cancel_scheduled', { type: 'cancel_at_period_end' });
  return runCommand(ctx, id, {
    ...command,
    push: () => ({ kind: 'cancel', timing }),
    input: { timing },
    requestKey,
  });
}

/** Seats. Per-seat limits follow at once. */
export function updateQuantity(ctx: Ctx, id: string, quantity: number) {
  return runCommand(ctx, id, {
    action: 'subscription.quantity_changed',
    next(current) {
      if (!isLive(current)) throw new IllegalTransitionError(current.status, 'change the quantity of');
      return { ...current, quantity };
    },
  });
}

/**
 * Moves to another plan of the same kind (base or add-on): now, or when the current period (or
 * trial) ends. A change at period end without `plan_version` takes the plan's latest version then.
 */
export function changeSubscription(
  ctx: Ctx,
  id: string,
  input: ChangeSubscriptionInput,
  requestKey?: string,
) {
  const immediate = input.timing === 'immediate';
  let target: { planKey: string; planVersion: number } | null = null;
  return runCommand(ctx, id, {
    action: immediate ? 'subscription.changed' : 'subscription.change_scheduled',
    input,
    requestKey,
    push: (_current, next) => {
      const to = target ?? { planKey: next.planKey, planVersion: next.planVersion };
      return { kind: 'change', ...to, timing: input.timing };
    },
    async next(current, t, plans) {
      const { plan } = await resolveTargetPlan(t.tx, t.environment, input.plan, input.plan_version);
      if (plan.addon !== current.addon) {
        const kinds = (addon: boolean) => (addon ? 'an add-on' : 'a base plan');
        throw new Unprocessable(
          'plan_kind_mismatch',
          `Subscription is ${kinds(current.addon)}; '${plan.planKey}' is ${kinds(plan.addon)}`,
          [{ path: 'plan', message: `must be ${kinds(current.addon)}` }],
        );
      }
      target = { planKey: plan.planKey, planVersion: plan.version };
      const lookup: PlanLookup = {
        latestVersion: (key) => (key === plan.planKey ? plan.version : plans.latestVersion(key)),
      };
      const change: SubscriptionEvent = immediate
        ? { type: 'change_now', planKey: plan.planKey, planVersion: plan.version }
        : { type: 'change_at_period_end', planKey: plan.planKey, planVersion: input.plan_version ?? null };
      return applyEvent(current, change, t.now, lookup);
    },
  });
}
