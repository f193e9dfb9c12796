import type { Subscription, SubscriptionStatus } from '../../domain/types.ts';
import type { SubscriptionResource } from './schema.ts';

/** Held or about to be: a scheduled subscription counts as the customer's one base plan already. */
export const LIVE_STATUSES: readonly SubscriptionStatus[] = [
  'scheduled',
  'trialing',
  'active',
  'past_due',
  'paused',
];
export const ENDED_STATUSES: readonly SubscriptionStatus[] = ['canceled', 'expired'];

export function isLive(sub: Subscription): boolean {
  return LIVE_STATUSES.includes(sub.status);
}

const iso = (d: Date | null) => d?.toISOString() ?? null;

/** The API shape of a subscription; callers pass the state at `now` (stateAt), never a stale row. */
export function toSubscriptionResource(sub: Subscription): SubscriptionResource {
  return {
    id: sub.id,
    customer_id: sub.customerId,
    plan: sub.planKey,
    plan_version: sub.planVersion,
    addon: sub.addon,
    status: sub.status,
    quantity: sub.quantity,
    started_at: sub.startedAt.toISOString(),
    trial_ends_at: iso(sub.trialEndsAt),
    current_period_start: sub.currentPeriodStart.toISOString(),
    current_period_end: sub.currentPeriodEnd.toISOString(),
    cancel_at_period_end: sub.cancelAtPeriodEnd,
    scheduled_change: sub.scheduledChange
      ? {
          plan: sub.scheduledChange.planKey,
          plan_version: sub.scheduledChange.planVersion,
          at: sub.scheduledChange.at.toISOString(),
        }
      : null,
    ended_at: iso(sub.endedAt),
    billing_anchor: sub.billingAnchor.toISOString(),
    trial_on_end: sub.trialOnEnd,
    trial_downgrade_to: sub.trialDowngradeTo,
    past_due_since: iso(sub.pastDueSince),
    paused_at: iso(sub.pausedAt),
    stripe: sub.stripe ? { subscription_id: sub.stripe.subscriptionId, item_id: sub.stripe.itemId } : null,
  };
}

/** Two states that would store the same row: a command that changes nothing records nothing. */
export function sameStoredState(a: Subscription, b: Subscription): boolean {
  return JSON.stringify(toSubscriptionResource(a)) === JSON.stringify(toSubscriptionResource(b));
}
