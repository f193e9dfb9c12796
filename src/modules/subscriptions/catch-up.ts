/**
 * Persisting time-driven transitions (trial ends, period rollovers, scheduled changes and
 * cancellations at period end, grace expiry). Decisions never wait for this: they derive the state
 * from the stored timestamps and `now`. Persisting only writes down what already happened, with its
 * audit record and outbox event, exactly once per transition: each one inserts its
 * `dueTransitionKey` into subscription_transitions (ON CONFLICT DO NOTHING) in the same transaction,
 * and a key that is already there is not recorded again (grace_end changes no stored field, so it is
 * listed again on every run while the subscription stays past_due).
 *
 * The scheduler does this for every subscription; commands do it for theirs first, in a transaction
 * of its own with the system as actor, so the audit log credits time's work to the system. (Only
 * when a boundary passes in the instant between the two transactions, or inside a customer
 * deletion, does it share the command's transaction and actor.)
 */
import {
  applyEvent,
  type DueTransition,
  dueTransitionKey,
  dueTransitions,
  type PlanLookup,
  trialEndOf,
} from '../../domain/subscription-state.ts';
import type { Subscription } from '../../domain/types.ts';
import { type Ctx, systemContext, type TxCtx, withTransaction } from '../../platform/context.ts';
import type { Executor } from '../../platform/db.ts';
import { lockCustomerRow } from '../customers/repo.ts';
import { readSettings } from '../settings/repo.ts';
import { planLookupFor } from './plans.ts';
import { lockSubscription, type SubscriptionRow, saveSubscription, toSubscription } from './repo.ts';
import { sameStoredState, toSubscriptionResource } from './resource.ts';

const DAY_MS = 86_400_000;

export async function pastDueGraceMs(db: Executor, environment: string): Promise<number> {
  return (await readSettings(db, environment)).past_due_grace_days * DAY_MS;
}

/** A cheap test that no time-driven transition can be due (past_due always needs a look: its grace). */
export function mayBeDue(sub: Subscription, now: Date): boolean {
  switch (sub.status) {
    case 'canceled':
    case 'expired':
      return false;
    case 'scheduled':
      return sub.startedAt <= now;
    case 'trialing':
      return trialEndOf(sub) <= now;
    case 'past_due':
      return true;
    default:
      return sub.currentPeriodEnd <= now;
  }
}

/** Time-driven audit actions are named by what happened, so `subscription.canceled` finds every cancellation. */
function actionOf(transition: DueTransition, before: Subscription, after: Subscription): string {
  if (after.status === 'canceled') return 'subscription.canceled';
  const planChanged = before.planKey !== after.planKey || before.planVersion !== after.planVersion;
  switch (transition.event.type) {
    case 'start':
      return 'subscription.started';
    case 'trial_end':
      if (after.status === 'expired') return 'subscription.trial_expired';
      return planChanged && before.trialOnEnd === 'downgrade'
        ? 'subscription.trial_downgraded'
        : 'subscription.trial_converted';
    case 'grace_end':
      return 'subscription.grace_ended';
    default:
      return planChanged ? 'subscription.changed' : 'subscription.renewed';
  }
}

export interface CatchUpResult {
  /** The state at `t.now`: equal to `stateAt(stored, t.now, plans)`. */
  state: Subscription;
  /** Transitions recorded now (not found in subscription_transitions before). */
  recorded: number;
  /** Whether the stored row changed. */
  changed: boolean;
}

/** Persists every transition of the locked subscription due by `t.now`. Audited with `t`'s actor. */
export async function catchUp(
  t: TxCtx,
  stored: Subscription,
  plans: PlanLookup,
  graceMs: number,
): Promise<CatchUpResult> {
  const due = dueTransitions(stored, t.now, plans, { pastDueGraceMs: graceMs });
  if (due.length === 0) return { state: stored, recorded: 0, changed: false };
  const keys = due.map((transition) => dueTransitionKey(stored.id, transition));
  const inserted = await t.tx
    .insertInto('subscription_transitions')
    .values(
      due.map((transition, i) => ({
        environment: t.environment,
        key: keys[i]!,
        subscription_id: stored.id,
        event: transition.event.type,
        due_at: transition.at,
        applied_at: t.now,
      })),
    )
    .onConflict((oc) => oc.columns(['environment', 'key']).doNothing())
    .returning('key')
    .execute();
  const fresh = new Set(inserted.map((r) => r.key));
  let current = stored;
  for (const [i, transition] of due.entries()) {
    const before = current;
    current = applyEvent(current, transition.event, transition.at, plans);
    if (!fresh.has(keys[i]!)) continue;
    const action = actionOf(transition, before, current);
    const subscription = toSubscriptionResource(current);
    const target = { type: 'subscription', id: stored.id };
    t.audit({
      action,
      target,
      customerId: stored.customerId,
      before: toSubscriptionResource(before),
      after: subscription,
    });
    t.emit({
      topic: 'subscription.updated',
      customerId: stored.customerId,
      payload: { action, event: transition.event.type, due_at: transition.at.toISOString(), subscription },
    });
  }
  const changed = !sameStoredState(current, stored);
  if (changed) await saveSubscription(t.tx, t.environment, current, t.now);
  if (changed || fresh.size > 0) t.touchCustomer(stored.customerId);
  return { state: current, recorded: fresh.size, changed };
}

export interface CaughtUp extends CatchUpResult {
  plans: PlanLookup;
}

/** Catches a locked row up to `t.now`; also returns the plan lookup a command on it needs. */
export async function catchUpRow(t: TxCtx, row: SubscriptionRow): Promise<CaughtUp> {
  const stored = toSubscription(row);
  const plans = await planLookupFor(t.tx, t.environment, [stored]);
  if (!mayBeDue(stored, t.now)) return { state: stored, recorded: 0, changed: false, plans };
  return { ...(await catchUp(t, stored, plans, await pastDueGraceMs(t.tx, t.environment))), plans };
}

/**
 * Before a command: catches these subscriptions up, each in its own transaction with the system as
 * actor (and the request's id). Locks go customer row first, then subscription row, as on every
 * path. Inside an outer transaction this is left to the command itself: a second transaction
 * would wait on the outer one's customer lock.
 */
export async function catchUpFirst(ctx: Ctx, stored: Subscription[]): Promise<void> {
  if ('tx' in ctx) return;
  const now = ctx.deps.clock.now();
  const system: Ctx = { ...systemContext(ctx.deps, ctx.environment), requestId: ctx.requestId };
  for (const sub of stored) {
    if (!mayBeDue(sub, now)) continue;
    await withTransaction(system, async (t) => {
      await lockCustomerRow(t.tx, t.environment, sub.customerId);
      const row = await lockSubscription(t.tx, t.environment, sub.id);
      if (row) await catchUpRow(t, row);
    });
  }
}
