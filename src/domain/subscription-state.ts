/**
 * A subscription as it is at an instant, derived from its stored form and `now` alone, so a
 * decision never waits for a background job. This is the module callers import: the transitions
 * (subscription-transitions.ts) and the start (subscription-start.ts) are re-exported here.
 *
 * Time-driven transitions and when they are due:
 *   start       at startedAt              (scheduled: a start in the future)
 *   trial_end   at trialEndsAt            (trialing)
 *   period_end  at each currentPeriodEnd   (active, past_due, paused; repeats while overdue;
 *                                          applies cancel at period end and a scheduled change)
 *   grace_end   at pastDueSince + grace    (past_due; only when the grace is known)
 */
import { billingPeriodContaining } from './periods.ts';
import {
  applyEvent,
  type PlanLookup,
  type SubscriptionEvent,
  trialEndOf,
} from './subscription-transitions.ts';
import type { Subscription } from './types.ts';

export { type StartSubscriptionInput, startSubscription } from './subscription-start.ts';
export {
  applyEvent,
  IllegalTransitionError,
  isLegalTransition,
  type PlanLookup,
  type SubscriptionEvent,
  type SubscriptionEventType,
  trialEndOf,
} from './subscription-transitions.ts';

export interface DueTransition {
  at: Date;
  event: SubscriptionEvent;
}

export interface DueTransitionOptions {
  /** When given, grace_end is listed for past_due subscriptions. */
  pastDueGraceMs?: number;
}

/**
 * The time-driven transitions due by `now`, in the order a scheduler applies them, each with the
 * instant it was due (apply it with `applyEvent(sub, event, at, plans)`). Each one follows from the
 * stored form the previous one leaves, so a scheduler may persist them one at a time.
 *
 * grace_end changes no stored field, so it is listed again on every run while the subscription
 * stays past_due: deduplicate on `dueTransitionKey`.
 */
export function dueTransitions(
  sub: Subscription,
  now: Date,
  plans: PlanLookup,
  options: DueTransitionOptions = {},
): DueTransition[] {
  const due: DueTransition[] = [];
  let current = sub;
  let graceEndListed = false;
  for (;;) {
    const next = nextDueTransition(current, graceEndListed ? undefined : options.pastDueGraceMs);
    if (next === null || next.at > now) return due;
    if (next.event.type === 'grace_end') graceEndListed = true;
    current = applyEvent(current, next.event, next.at, plans);
    due.push(next);
  }
}

/** A stable idempotency key for one due transition of one subscription. */
export function dueTransitionKey(subscriptionId: string, transition: DueTransition): string {
  return `${subscriptionId}:${transition.event.type}:${transition.at.toISOString()}`;
}

/**
 * The subscription as it is at `now`: every due time-driven transition applied in time order.
 * Equals folding `dueTransitions(sub, now, plans)` through `applyEvent`, but skips straight to the
 * current period when the rest is plain rollovers. Returns `sub` itself when nothing is due.
 */
export function stateAt(sub: Subscription, now: Date, plans: PlanLookup): Subscription {
  let current = sub;
  for (;;) {
    const next = nextDueTransition(current, undefined);
    if (next === null || next.at > now) return current;
    if (isPlainRollover(current)) {
      // Rolling period by period from an overdue end always lands on the period containing now.
      const period = billingPeriodContaining(current.billingAnchor, now);
      return { ...current, currentPeriodStart: period.start, currentPeriodEnd: period.end };
    }
    current = applyEvent(current, next.event, next.at, plans);
  }
}

export type AccessReason = 'granted' | 'subscription_inactive' | 'trial_expired' | 'past_due_grace_ended';
export interface SubscriptionAccess {
  access: 'full' | 'fallback';
  reason: AccessReason;
}

/**
 * What a subscription grants at `now`: its plan in full, or only the environment's fallback.
 * `plans` only matters when a trial downgrades to a plan that no longer exists (it then expires);
 * without it every plan is assumed to exist.
 */
export function accessOf(
  sub: Subscription,
  now: Date,
  policy: { pastDueGraceMs: number },
  plans: PlanLookup = EVERY_PLAN_EXISTS,
): SubscriptionAccess {
  // A subscription starting later grants nothing yet.
  if (now < sub.startedAt) return fallback('subscription_inactive');
  const state = stateAt(sub, now, plans);
  switch (state.status) {
    case 'trialing':
    case 'active':
      return { access: 'full', reason: 'granted' };
    case 'scheduled':
      return fallback('subscription_inactive');
    case 'past_due': {
      const since = state.pastDueSince ?? now;
      const inGrace = now.getTime() < since.getTime() + policy.pastDueGraceMs;
      return inGrace ? { access: 'full', reason: 'granted' } : fallback('past_due_grace_ended');
    }
    case 'paused':
    case 'canceled':
      return fallback('subscription_inactive');
    case 'expired':
      return fallback(endedWithUnconvertedTrial(state) ? 'trial_expired' : 'subscription_inactive');
  }
}

function fallback(reason: Exclude<AccessReason, 'granted'>): SubscriptionAccess {
  return { access: 'fallback', reason };
}

/** Access depends on the status only; any version number keeps the status right. */
const EVERY_PLAN_EXISTS: PlanLookup = { latestVersion: () => 0 };

function endedWithUnconvertedTrial(sub: Subscription): boolean {
  return (
    sub.trialEndsAt !== null && sub.endedAt !== null && sub.endedAt.getTime() === sub.trialEndsAt.getTime()
  );
}

/** The next time-driven transition of `sub`, due or not; null when none will ever come. */
function nextDueTransition(sub: Subscription, pastDueGraceMs: number | undefined): DueTransition | null {
  switch (sub.status) {
    case 'scheduled':
      return { at: sub.startedAt, event: { type: 'start' } };
    case 'trialing':
      return { at: trialEndOf(sub), event: { type: 'trial_end' } };
    case 'active':
    case 'paused':
      return { at: sub.currentPeriodEnd, event: { type: 'period_end' } };
    case 'past_due': {
      const periodEnd: DueTransition = { at: sub.currentPeriodEnd, event: { type: 'period_end' } };
      if (pastDueGraceMs === undefined || sub.pastDueSince === null) return periodEnd;
      const graceEndsAt = new Date(sub.pastDueSince.getTime() + pastDueGraceMs);
      // On a tie the grace ends first: the period end may cancel, after which grace_end is illegal.
      return graceEndsAt <= periodEnd.at ? { at: graceEndsAt, event: { type: 'grace_end' } } : periodEnd;
    }
    case 'canceled':
    case 'expired':
      return null;
  }
}

/** Only period rollovers remain: nothing will cancel or change the plan at a period end. */
function isPlainRollover(sub: Subscription): boolean {
  return (
    (sub.status === 'active' || sub.status === 'past_due' || sub.status === 'paused') &&
    !sub.cancelAtPeriodEnd &&
    sub.scheduledChange === null
  );
}
