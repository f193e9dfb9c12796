import { describe, expect, it } from 'vitest';
import { startSubscription } from '../../src/domain/subscription-start.ts';
import { applyEvent } from '../../src/domain/subscription-state.ts';
import { extendTrial } from '../../src/domain/trial-extension.ts';

const DAY = 86_400_000;
const now = new Date('2026-06-01T00:00:00.000Z');
const plans = { latestVersion: () => 1 };

function trialing() {
  return startSubscription(
    {
      id: 'sub_1',
      customerId: 'c',
      planKey: 'pro',
      planVersion: 1,
      addon: false,
      quantity: 1,
      trialDays: 14,
      trialOnEnd: 'convert',
      trialDowngradeTo: null,
      startsAt: now,
    },
    now,
  );
}

describe('extending a trial', () => {
  it('moves the trial end, the period end and the billing anchor by whole days', () => {
    const sub = trialing();
    const next = extendTrial(sub, 7, now)!;
    expect(next.trialEndsAt?.getTime()).toBe(now.getTime() + 21 * DAY);
    expect(next.currentPeriodEnd).toEqual(next.trialEndsAt);
    expect(next.billingAnchor).toEqual(next.trialEndsAt);
    // The old end is no longer due; the new one is.
    expect(() =>
      applyEvent(next, { type: 'trial_end' }, new Date(now.getTime() + 14 * DAY), plans),
    ).toThrow();
    expect(applyEvent(next, { type: 'trial_end' }, next.trialEndsAt!, plans).status).toBe('active');
  });

  it('refuses a subscription that is not in a trial', () => {
    const sub = trialing();
    expect(extendTrial(sub, 7, new Date(now.getTime() + 14 * DAY))).toBeNull();
    expect(extendTrial({ ...sub, status: 'active', trialEndsAt: null }, 7, now)).toBeNull();
  });
});
