/**
 * The subscription lifecycle as a pure state machine: one named event moves a stored
 * Subscription to its next stored form. Time-driven events (trial_end, period_end, grace_end)
 * take every value they record from the stored timestamps, never from `now`, so applying them
 * late gives the same result as applying them on time; `now` only proves they are due.
 * Deriving the state at an instant from the stored form lives in subscription-state.ts.
 */
import { billingPeriodContaining, nextPeriod } from './periods.ts';
import type { Subscription, SubscriptionStatus } from './types.ts';

export type SubscriptionEvent =
  /** A scheduled subscription's start arrives: it becomes trialing (with a trial) or active. Time-driven. */
  | { type: 'start' }
  | { type: 'trial_end' }
  /** Ends the trial early and starts paying now: the billing anchor moves to now. */
  | { type: 'convert' }
  | { type: 'payment_failed' }
  | { type: 'payment_recovered' }
  /** Records that past_due's grace ran out; changes no stored field (access derives it). */
  | { type: 'grace_end' }
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'cancel_now' }
  | { type: 'cancel_at_period_end' }
  | { type: 'undo_cancel_at_period_end' }
  | { type: 'period_end' }
  /** planVersion null: the plan's latest version. */
  | { type: 'change_now'; planKey: string; planVersion: number | null }
  /** planVersion null: the plan's latest version when the change takes effect. */
  | { type: 'change_at_period_end'; planKey: string; planVersion: number | null }
  | { type: 'cancel_scheduled_change' };

export type SubscriptionEventType = SubscriptionEvent['type'];

/** The one thing the state machine needs from the catalog. */
export interface PlanLookup {
  latestVersion(planKey: string): number | null;
}

export class IllegalTransitionError extends Error {
  readonly state: SubscriptionStatus;
  readonly event: string;
  constructor(state: SubscriptionStatus, event: string, detail?: string) {
    super(`cannot ${event} a subscription that is ${state}${detail === undefined ? '' : `: ${detail}`}`);
    this.name = 'IllegalTransitionError';
    this.state = state;
    this.event = event;
  }
}

/** Held (or about to be): every status but the two terminal ones. */
const LIVE: readonly SubscriptionStatus[] = ['scheduled', 'trialing', 'active', 'past_due', 'paused'];

/** Where each event is legal. canceled and expired are terminal: nothing is legal there. */
const LEGAL_IN: Record<SubscriptionEventType, readonly SubscriptionStatus[]> = {
  start: ['scheduled'],
  trial_end: ['trialing'],
  convert: ['trialing'],
  // A retry failing again while past_due is legal and keeps the original pastDueSince,
  // so the grace period does not restart with every retry.
  payment_failed: ['trialing', 'active', 'past_due'],
  payment_recovered: ['past_due'],
  grace_end: ['past_due'],
  pause: ['active', 'past_due'],
  resume: ['paused'],
  cancel_now: LIVE,
  cancel_at_period_end: ['scheduled', 'trialing', 'active', 'past_due'],
  undo_cancel_at_period_end: LIVE,
  // Periods keep rolling while past_due or paused so the stored period is always the current one.
  // A trial's period ends with trial_end instead.
  period_end: ['active', 'past_due', 'paused'],
  change_now: LIVE,
  change_at_period_end: LIVE,
  cancel_scheduled_change: LIVE,
};

export function isLegalTransition(status: SubscriptionStatus, type: SubscriptionEventType): boolean {
  return LEGAL_IN[type].includes(status);
}

/** When a trialing subscription's trial (and so its current period) ends. */
export function trialEndOf(sub: Subscription): Date {
  return sub.trialEndsAt ?? sub.currentPeriodEnd;
}

/**
 * Returns a new Subscription; throws IllegalTransitionError when `event` is not legal (or not yet due).
 * Applies exactly one transition: apply a command to `stateAt(sub, now, plans)`, not to a stored
 * row that may be behind, so the trial ends and periods roll before the command lands.
 */
export function applyEvent(
  sub: Subscription,
  event: SubscriptionEvent,
  now: Date,
  plans: PlanLookup,
): Subscription {
  if (!isLegalTransition(sub.status, event.type)) throw new IllegalTransitionError(sub.status, event.type);
  switch (event.type) {
    case 'start':
      assertDue(sub, event.type, sub.startedAt, now, 'its start is at');
      // Its periods (the trial, or the first billing period) were set when it was created.
      return { ...sub, status: sub.trialEndsAt !== null ? 'trialing' : 'active' };
    case 'trial_end':
      assertDue(sub, event.type, trialEndOf(sub), now, 'its trial ends at');
      return endTrial(sub, plans);
    case 'convert':
      return convertTrial(sub, now, plans);
    case 'payment_failed':
      return { ...sub, status: 'past_due', pastDueSince: sub.status === 'past_due' ? sub.pastDueSince : now };
    case 'payment_recovered':
      return { ...sub, status: 'active', pastDueSince: null };
    case 'grace_end':
      return { ...sub };
    case 'pause':
      return { ...sub, status: 'paused', pausedAt: now };
    case 'resume':
      // The billing anchor is kept: periods rolled on while paused.
      return { ...sub, status: 'active', pausedAt: null, pastDueSince: null };
    case 'cancel_now':
      return endSubscription(sub, 'canceled', now);
    case 'cancel_at_period_end':
      return { ...sub, cancelAtPeriodEnd: true };
    case 'undo_cancel_at_period_end':
      return { ...sub, cancelAtPeriodEnd: false };
    case 'period_end':
      assertDue(sub, event.type, sub.currentPeriodEnd, now, 'its period ends at');
      return endPeriod(sub, plans);
    case 'change_now':
      // A change made now supersedes any change that was waiting for the period end.
      return {
        ...sub,
        planKey: event.planKey,
        planVersion: resolveVersion(event.planKey, event.planVersion, plans),
        scheduledChange: null,
      };
    case 'change_at_period_end':
      resolveVersion(event.planKey, event.planVersion, plans); // reject unknown plans when scheduling, not later
      return {
        ...sub,
        scheduledChange: { planKey: event.planKey, planVersion: event.planVersion, at: sub.currentPeriodEnd },
      };
    case 'cancel_scheduled_change':
      return { ...sub, scheduledChange: null };
  }
}

function assertDue(
  sub: Subscription,
  type: SubscriptionEventType,
  dueAt: Date,
  now: Date,
  what: string,
): void {
  if (now < dueAt) throw new IllegalTransitionError(sub.status, type, `${what} ${dueAt.toISOString()}`);
}

/**
 * Trial end, in this order: an explicit cancel at period end wins; then the trial's own rule.
 * A change scheduled during the trial applies on conversion and replaces a downgrade's target.
 * A downgrade with no target or an unknown target plan expires instead of granting the trial
 * plan for free.
 */
function endTrial(sub: Subscription, plans: PlanLookup): Subscription {
  const endsAt = trialEndOf(sub);
  if (sub.cancelAtPeriodEnd) return endSubscription(sub, 'canceled', endsAt);
  const onEnd = sub.trialOnEnd ?? 'convert';
  if (onEnd === 'cancel') return endSubscription(sub, 'expired', endsAt);
  const period = billingPeriodContaining(sub.billingAnchor, endsAt);
  const paid: Subscription = {
    ...sub,
    status: 'active',
    currentPeriodStart: period.start,
    currentPeriodEnd: period.end,
  };
  if (onEnd === 'convert') return applyScheduledChange(paid, endsAt, plans);
  const change = isScheduledBy(sub, endsAt) ? sub.scheduledChange : null;
  const target = change?.planKey ?? sub.trialDowngradeTo;
  const version = target === null ? null : (change?.planVersion ?? plans.latestVersion(target));
  if (target === null || version === null) return endSubscription(sub, 'expired', endsAt);
  return {
    ...paid,
    planKey: target,
    planVersion: version,
    scheduledChange: change === null ? sub.scheduledChange : null,
  };
}

/**
 * Early conversion: the trial ends now, so paid periods are anchored on now. Converting is an
 * explicit decision to keep the subscription, so it clears a pending cancel at period end, and
 * a change scheduled for the trial's end applies now.
 */
function convertTrial(sub: Subscription, now: Date, plans: PlanLookup): Subscription {
  const endsAt = trialEndOf(sub);
  if (now >= endsAt) {
    // Too late to convert early: trial_end decides, and rewriting when the trial ended would falsify history.
    throw new IllegalTransitionError(
      sub.status,
      'convert',
      `its trial already ended at ${endsAt.toISOString()}`,
    );
  }
  const period = billingPeriodContaining(now, now);
  const converted: Subscription = {
    ...sub,
    status: 'active',
    trialEndsAt: now,
    billingAnchor: now,
    currentPeriodStart: period.start,
    currentPeriodEnd: period.end,
    cancelAtPeriodEnd: false,
  };
  return isScheduledBy(sub, endsAt) ? applyScheduledChange(converted, endsAt, plans) : converted;
}

function endPeriod(sub: Subscription, plans: PlanLookup): Subscription {
  const boundary = sub.currentPeriodEnd;
  if (sub.cancelAtPeriodEnd) return endSubscription(sub, 'canceled', boundary);
  const next = nextPeriod(
    'billing_period',
    { start: sub.currentPeriodStart, end: boundary },
    sub.billingAnchor,
  );
  return applyScheduledChange(
    { ...sub, currentPeriodStart: next.start, currentPeriodEnd: next.end },
    boundary,
    plans,
  );
}

function isScheduledBy(sub: Subscription, boundary: Date): boolean {
  return sub.scheduledChange !== null && sub.scheduledChange.at <= boundary;
}

/**
 * Applies a scheduled change due by `boundary`. If its plan has disappeared from the catalog by
 * then, the subscription stays on its current plan and the change is dropped: a time-driven
 * transition must not fail, or the scheduler and every access check behind it would stall.
 */
function applyScheduledChange(sub: Subscription, boundary: Date, plans: PlanLookup): Subscription {
  const change = sub.scheduledChange;
  if (change === null || change.at > boundary) return sub;
  const version = change.planVersion ?? plans.latestVersion(change.planKey);
  if (version === null) return { ...sub, scheduledChange: null };
  return { ...sub, planKey: change.planKey, planVersion: version, scheduledChange: null };
}

function endSubscription(sub: Subscription, status: 'canceled' | 'expired', endedAt: Date): Subscription {
  // A change that can never happen is no longer scheduled.
  return { ...sub, status, endedAt, scheduledChange: null };
}

function resolveVersion(planKey: string, planVersion: number | null, plans: PlanLookup): number {
  const version = planVersion ?? plans.latestVersion(planKey);
  if (version === null) throw new RangeError(`unknown plan ${planKey}`);
  return version;
}
