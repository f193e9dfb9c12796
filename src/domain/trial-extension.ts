/**
 * Extending a trial: a trialing subscription's trial (and so its current period, its billing
 * anchor and a change scheduled for the trial's end) moves later by whole days. Pure.
 */
import type { Subscription } from './types.ts';

const DAY_MS = 86_400_000;

/** Whether the subscription is in a trial that has not ended by `now`. */
export function isInTrial(sub: Subscription, now: Date): boolean {
  return sub.status === 'trialing' && sub.trialEndsAt !== null && sub.trialEndsAt > now;
}

/** The subscription with its trial `days` longer; null when it is not in a trial at `now`. */
export function extendTrial(sub: Subscription, days: number, now: Date): Subscription | null {
  if (!isInTrial(sub, now) || sub.trialEndsAt === null) return null;
  const end = new Date(sub.trialEndsAt.getTime() + days * DAY_MS);
  const atTrialEnd = sub.scheduledChange?.at.getTime() === sub.trialEndsAt.getTime();
  return {
    ...sub,
    trialEndsAt: end,
    billingAnchor: end,
    currentPeriodEnd: end,
    scheduledChange:
      atTrialEnd && sub.scheduledChange ? { ...sub.scheduledChange, at: end } : sub.scheduledChange,
  };
}
