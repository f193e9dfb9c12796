/**
 * The `start` transition: a new stored Subscription. Every later transition is in
 * subscription-transitions.ts.
 */
import { billingPeriodContaining } from './periods.ts';
import type { Subscription, TrialEnd } from './types.ts';

export interface StartSubscriptionInput {
  id: string;
  customerId: string;
  planKey: string;
  planVersion: number;
  addon: boolean;
  quantity: number;
  /** null or 0: no trial. */
  trialDays: number | null;
  /** null: convert. */
  trialOnEnd: TrialEnd | null;
  trialDowngradeTo: string | null;
  startsAt: Date;
}

const DAY_MS = 86_400_000;

/**
 * A new subscription. A trial's billing anchor is its end, so paid periods start when it
 * converts; without a trial the anchor is the start. A start after `now` is stored `scheduled`
 * (with its first period already set), and the time-driven `start` transition makes it `trialing`
 * or `active` at `startsAt`. Otherwise the stored status is the one at `startsAt`: for a
 * backdated start, read it through stateAt.
 */
export function startSubscription(input: StartSubscriptionInput, now: Date): Subscription {
  const trialDays = input.trialDays ?? 0;
  if (!Number.isInteger(trialDays) || trialDays < 0)
    throw new RangeError('trialDays must be a whole number >= 0');
  if (!Number.isInteger(input.quantity) || input.quantity < 1)
    throw new RangeError('quantity must be a whole number >= 1');
  const trialing = trialDays > 0;
  const trialOnEnd = trialing ? (input.trialOnEnd ?? 'convert') : null;
  if (trialOnEnd === 'downgrade' && input.trialDowngradeTo === null) {
    throw new RangeError('a trial that downgrades on end needs trialDowngradeTo');
  }
  const scheduled = input.startsAt > now;
  const base = {
    id: input.id,
    customerId: input.customerId,
    planKey: input.planKey,
    planVersion: input.planVersion,
    addon: input.addon,
    quantity: input.quantity,
    startedAt: input.startsAt,
    cancelAtPeriodEnd: false,
    scheduledChange: null,
    pastDueSince: null,
    pausedAt: null,
    endedAt: null,
  };
  if (trialing) {
    const trialEndsAt = new Date(input.startsAt.getTime() + trialDays * DAY_MS);
    return {
      ...base,
      status: scheduled ? 'scheduled' : 'trialing',
      billingAnchor: trialEndsAt,
      trialEndsAt,
      trialOnEnd,
      trialDowngradeTo: trialOnEnd === 'downgrade' ? input.trialDowngradeTo : null,
      currentPeriodStart: input.startsAt,
      currentPeriodEnd: trialEndsAt,
    };
  }
  // A start in the future gets its first period, not the one before it.
  const period = billingPeriodContaining(input.startsAt, now > input.startsAt ? now : input.startsAt);
  return {
    ...base,
    status: scheduled ? 'scheduled' : 'active',
    billingAnchor: input.startsAt,
    trialEndsAt: null,
    trialOnEnd: null,
    trialDowngradeTo: null,
    currentPeriodStart: period.start,
    currentPeriodEnd: period.end,
  };
}
