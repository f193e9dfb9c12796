import { describe, expect, it } from 'vitest';
import {
  accessOf,
  applyEvent,
  IllegalTransitionError,
  type SubscriptionEvent,
  type SubscriptionEventType,
} from '../../src/domain/subscription-state.ts';
import type { Subscription, SubscriptionStatus } from '../../src/domain/types.ts';
import { at, GRACE_MS, plans, started, T0 } from './subscription-fixtures.ts';

const trialEnd = at('2024-02-14T10:00:00Z');
const apply = (sub: Subscription, event: SubscriptionEvent, now: Date) => applyEvent(sub, event, now, plans);
const mid = at('2024-02-05T00:00:00Z');

function inStatus(status: SubscriptionStatus): Subscription {
  switch (status) {
    case 'scheduled':
      return started({}, at('2023-12-01T00:00:00Z'));
    case 'trialing':
      return started({ trialDays: 14 });
    case 'active':
      return started();
    case 'past_due':
      return apply(started(), { type: 'payment_failed' }, T0);
    case 'paused':
      return apply(started(), { type: 'pause' }, T0);
    case 'canceled':
      return apply(started(), { type: 'cancel_now' }, T0);
    case 'expired':
      return apply(started({ trialDays: 14, trialOnEnd: 'cancel' }), { type: 'trial_end' }, trialEnd);
  }
}

describe('startSubscription', () => {
  it('starts active, anchored on the start, in the billing period containing now', () => {
    const sub = started({}, at('2024-03-05T00:00:00Z'));
    expect(sub).toMatchObject({ status: 'active', billingAnchor: T0, trialEndsAt: null, trialOnEnd: null });
    expect([sub.currentPeriodStart, sub.currentPeriodEnd]).toEqual([
      at('2024-02-29T10:00:00Z'),
      at('2024-03-31T10:00:00Z'),
    ]);
  });

  it('starts a trial anchored on its end, with the trial as the current period', () => {
    const sub = started({ trialDays: 14, trialOnEnd: 'downgrade', trialDowngradeTo: 'basic' });
    expect(sub).toMatchObject({
      status: 'trialing',
      trialEndsAt: trialEnd,
      billingAnchor: trialEnd,
      currentPeriodStart: T0,
      currentPeriodEnd: trialEnd,
      trialOnEnd: 'downgrade',
      trialDowngradeTo: 'basic',
    });
  });

  it('gives a future start its first period and rejects bad input', () => {
    const sub = started({}, at('2023-12-01T00:00:00Z'));
    expect(sub.currentPeriodStart).toEqual(T0);
    expect(sub.status).toBe('scheduled');
    expect(() => started({ trialDays: -1 })).toThrow(RangeError);
    expect(() => started({ quantity: 0 })).toThrow(RangeError);
    expect(() => started({ trialDays: 7, trialOnEnd: 'downgrade' })).toThrow(RangeError);
  });
});

describe('trial_end and convert', () => {
  it('converts to active with the first billing period from the trial end', () => {
    const sub = apply(started({ trialDays: 14 }), { type: 'trial_end' }, trialEnd);
    expect(sub).toMatchObject({
      status: 'active',
      currentPeriodStart: trialEnd,
      currentPeriodEnd: at('2024-03-14T10:00:00Z'),
    });
  });

  it('expires a cancel-on-end trial at its end', () => {
    const sub = inStatus('expired');
    expect(sub).toMatchObject({ status: 'expired', endedAt: trialEnd });
    expect(accessOf(sub, mid, { pastDueGraceMs: GRACE_MS })).toEqual({
      access: 'fallback',
      reason: 'trial_expired',
    });
  });

  it('downgrades to the latest version of the target plan, or expires when it is gone', () => {
    const downgrading = started({ trialDays: 14, trialOnEnd: 'downgrade', trialDowngradeTo: 'basic' });
    expect(apply(downgrading, { type: 'trial_end' }, trialEnd)).toMatchObject({
      status: 'active',
      planKey: 'basic',
      planVersion: 3,
    });
    const toGone = { ...downgrading, trialDowngradeTo: 'gone' };
    expect(apply(toGone, { type: 'trial_end' }, trialEnd)).toMatchObject({
      status: 'expired',
      endedAt: trialEnd,
    });
  });

  it('cancels at the trial end when asked to cancel at period end', () => {
    const sub = apply(started({ trialDays: 14 }), { type: 'cancel_at_period_end' }, mid);
    expect(apply(sub, { type: 'trial_end' }, trialEnd)).toMatchObject({
      status: 'canceled',
      endedAt: trialEnd,
    });
  });

  it('applies a change scheduled during the trial when it converts', () => {
    const sub = apply(
      started({ trialDays: 14 }),
      { type: 'change_at_period_end', planKey: 'team', planVersion: null },
      mid,
    );
    expect(sub.scheduledChange).toEqual({ planKey: 'team', planVersion: null, at: trialEnd });
    expect(apply(sub, { type: 'trial_end' }, trialEnd)).toMatchObject({
      planKey: 'team',
      planVersion: 2,
      scheduledChange: null,
    });
  });

  it('is not due before the trial ends', () => {
    expect(() => apply(started({ trialDays: 14 }), { type: 'trial_end' }, mid)).toThrow(
      IllegalTransitionError,
    );
  });

  it('converts early: paid periods are anchored on the conversion', () => {
    const sub = apply(started({ trialDays: 14 }), { type: 'convert' }, mid);
    expect(sub).toMatchObject({
      status: 'active',
      trialEndsAt: mid,
      billingAnchor: mid,
      currentPeriodStart: mid,
      currentPeriodEnd: at('2024-03-05T00:00:00Z'),
    });
    expect(() => apply(started({ trialDays: 14 }), { type: 'convert' }, trialEnd)).toThrow(
      /trial already ended/,
    );
  });
});

describe('payments, pause and cancel', () => {
  it('goes past_due on a failed payment and keeps the first failure on retries', () => {
    const pastDue = inStatus('past_due');
    expect(pastDue).toMatchObject({ status: 'past_due', pastDueSince: T0 });
    expect(apply(pastDue, { type: 'payment_failed' }, mid).pastDueSince).toEqual(T0);
    expect(apply(started({ trialDays: 14 }), { type: 'payment_failed' }, mid).status).toBe('past_due');
  });

  it('recovers to active, and grace_end records nothing new', () => {
    const pastDue = inStatus('past_due');
    expect(apply(pastDue, { type: 'payment_recovered' }, mid)).toMatchObject({
      status: 'active',
      pastDueSince: null,
    });
    expect(apply(pastDue, { type: 'grace_end' }, mid)).toEqual(pastDue);
  });

  it('pauses and resumes, keeping the billing anchor', () => {
    const paused = apply(inStatus('past_due'), { type: 'pause' }, mid);
    expect(paused).toMatchObject({ status: 'paused', pausedAt: mid });
    const resumed = apply(paused, { type: 'resume' }, mid);
    expect(resumed).toMatchObject({
      status: 'active',
      pausedAt: null,
      pastDueSince: null,
      billingAnchor: T0,
    });
  });

  it('cancels now from any live state', () => {
    for (const status of ['scheduled', 'trialing', 'active', 'past_due', 'paused'] as const) {
      expect(apply(inStatus(status), { type: 'cancel_now' }, mid)).toMatchObject({
        status: 'canceled',
        endedAt: mid,
      });
    }
  });

  it('cancels at the period end, unless undone', () => {
    const canceling = apply(started(), { type: 'cancel_at_period_end' }, mid);
    const periodEnd = canceling.currentPeriodEnd;
    expect(apply(canceling, { type: 'period_end' }, periodEnd)).toMatchObject({
      status: 'canceled',
      endedAt: periodEnd,
    });
    const undone = apply(canceling, { type: 'undo_cancel_at_period_end' }, mid);
    expect(apply(undone, { type: 'period_end' }, periodEnd).status).toBe('active');
  });
});

describe('periods and plan changes', () => {
  it('rolls to the next clamped billing period, and not before the period ends', () => {
    const sub = started();
    expect(sub.currentPeriodEnd).toEqual(at('2024-02-29T10:00:00Z'));
    const rolled = apply(sub, { type: 'period_end' }, sub.currentPeriodEnd);
    expect([rolled.currentPeriodStart, rolled.currentPeriodEnd]).toEqual([
      at('2024-02-29T10:00:00Z'),
      at('2024-03-31T10:00:00Z'),
    ]);
    expect(() => apply(sub, { type: 'period_end' }, mid)).toThrow(/period ends at 2024-02-29/);
  });

  it('changes the plan now, keeping the period and dropping a scheduled change', () => {
    const scheduled = apply(
      started(),
      { type: 'change_at_period_end', planKey: 'basic', planVersion: 1 },
      mid,
    );
    const changed = apply(scheduled, { type: 'change_now', planKey: 'team', planVersion: null }, mid);
    expect(changed).toMatchObject({
      planKey: 'team',
      planVersion: 2,
      scheduledChange: null,
      currentPeriodStart: T0,
    });
    expect(() => apply(started(), { type: 'change_now', planKey: 'gone', planVersion: null }, mid)).toThrow(
      RangeError,
    );
  });

  it('applies a scheduled change at the period end, unless it was called off', () => {
    const scheduled = apply(
      started(),
      { type: 'change_at_period_end', planKey: 'basic', planVersion: null },
      mid,
    );
    expect(scheduled.scheduledChange).toEqual({
      planKey: 'basic',
      planVersion: null,
      at: scheduled.currentPeriodEnd,
    });
    expect(apply(scheduled, { type: 'period_end' }, scheduled.currentPeriodEnd)).toMatchObject({
      planKey: 'basic',
      planVersion: 3,
      scheduledChange: null,
    });
    const calledOff = apply(scheduled, { type: 'cancel_scheduled_change' }, mid);
    expect(apply(calledOff, { type: 'period_end' }, scheduled.currentPeriodEnd).planKey).toBe('pro');
  });
});

describe('legal transitions', () => {
  const live = ['scheduled', 'trialing', 'active', 'past_due', 'paused'];
  // Written out by hand so the state machine's own table is checked, not restated.
  const legalIn: Record<SubscriptionEventType, string[]> = {
    start: ['scheduled'],
    trial_end: ['trialing'],
    convert: ['trialing'],
    payment_failed: ['trialing', 'active', 'past_due'],
    payment_recovered: ['past_due'],
    grace_end: ['past_due'],
    pause: ['active', 'past_due'],
    resume: ['paused'],
    cancel_now: live,
    cancel_at_period_end: ['scheduled', 'trialing', 'active', 'past_due'],
    undo_cancel_at_period_end: live,
    period_end: ['active', 'past_due', 'paused'],
    change_now: live,
    change_at_period_end: live,
    cancel_scheduled_change: live,
  };
  const statuses: SubscriptionStatus[] = [
    'scheduled',
    'trialing',
    'active',
    'past_due',
    'paused',
    'canceled',
    'expired',
  ];
  const eventOf = (type: SubscriptionEventType): SubscriptionEvent =>
    type === 'change_now' || type === 'change_at_period_end'
      ? { type, planKey: 'team', planVersion: null }
      : { type };
  // Time-driven events are tried when due, the others mid-trial so convert is not late.
  const nowFor = (sub: Subscription, type: SubscriptionEventType) =>
    type === 'start'
      ? sub.startedAt
      : type === 'trial_end' || type === 'period_end'
        ? sub.currentPeriodEnd
        : at('2024-02-01T00:00:00Z');

  for (const status of statuses) {
    for (const type of Object.keys(legalIn) as SubscriptionEventType[]) {
      const legal = legalIn[type].includes(status);
      it(`${type} is ${legal ? 'legal' : 'illegal'} when ${status}`, () => {
        const sub = inStatus(status);
        const attempt = () => applyEvent(sub, eventOf(type), nowFor(sub, type), plans);
        if (legal) {
          expect(attempt()).not.toBe(sub);
        } else {
          expect(attempt).toThrow(IllegalTransitionError);
        }
      });
    }
  }

  it('names the state and the event', () => {
    const error = (() => {
      try {
        apply(inStatus('canceled'), { type: 'pause' }, mid);
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(IllegalTransitionError);
    expect(error).toMatchObject({
      state: 'canceled',
      event: 'pause',
      message: 'cannot pause a subscription that is canceled',
    });
  });
});
