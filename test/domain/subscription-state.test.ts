import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  accessOf,
  applyEvent,
  dueTransitionKey,
  dueTransitions,
  type SubscriptionEvent,
  stateAt,
} from '../../src/domain/subscription-state.ts';
import type { Subscription, SubscriptionStatus } from '../../src/domain/types.ts';
import {
  anyEventArb,
  applyIfLegal,
  at,
  DAY,
  GRACE_MS,
  offsetArb,
  plans,
  started,
  storedSubscriptionArb,
  T0,
} from './subscription-fixtures.ts';

const apply = (sub: Subscription, event: SubscriptionEvent, now: Date) => applyEvent(sub, event, now, plans);
const mid = at('2024-02-05T00:00:00Z');
const pastDue = () => apply(started(), { type: 'payment_failed' }, T0);
const policy = { pastDueGraceMs: GRACE_MS };

describe('stateAt, dueTransitions and accessOf', () => {
  it('ends the trial and rolls every overdue period', () => {
    const sub = started({ trialDays: 14 });
    const now = at('2024-05-20T00:00:00Z');
    const due = dueTransitions(sub, now, plans);
    expect(due.map((d) => `${d.event.type}@${d.at.toISOString().slice(0, 10)}`)).toEqual([
      'trial_end@2024-02-14',
      'period_end@2024-03-14',
      'period_end@2024-04-14',
      'period_end@2024-05-14',
    ]);
    expect(stateAt(sub, now, plans)).toMatchObject({
      status: 'active',
      currentPeriodStart: at('2024-05-14T10:00:00Z'),
      currentPeriodEnd: at('2024-06-14T10:00:00Z'),
    });
    expect(dueTransitionKey(sub.id, due[0]!)).toBe('sub_1:trial_end:2024-02-14T10:00:00.000Z');
  });

  it('lists grace_end when the grace is known', () => {
    const sub = pastDue();
    const due = dueTransitions(sub, at('2024-02-10T00:00:00Z'), plans, { pastDueGraceMs: GRACE_MS });
    expect(due).toEqual([{ at: new Date(T0.getTime() + GRACE_MS), event: { type: 'grace_end' } }]);
    expect(stateAt(sub, at('2024-02-10T00:00:00Z'), plans)).toBe(sub);
  });

  it('grants full access while trialing, active and within the past_due grace', () => {
    expect(accessOf(started({ trialDays: 14 }), mid, policy)).toEqual({ access: 'full', reason: 'granted' });
    const sub = pastDue();
    expect(accessOf(sub, new Date(T0.getTime() + GRACE_MS - 1), policy).access).toBe('full');
    expect(accessOf(sub, new Date(T0.getTime() + GRACE_MS), policy)).toEqual({
      access: 'fallback',
      reason: 'past_due_grace_ended',
    });
  });

  it('falls back when paused, canceled, ended or not yet started', () => {
    const inactive = { access: 'fallback', reason: 'subscription_inactive' };
    expect(accessOf(apply(started(), { type: 'pause' }, T0), mid, policy)).toEqual(inactive);
    expect(accessOf(apply(started(), { type: 'cancel_now' }, T0), mid, policy)).toEqual(inactive);
    expect(accessOf(started(), new Date(T0.getTime() - DAY), policy)).toEqual(inactive);
    const canceling = apply(started(), { type: 'cancel_at_period_end' }, mid);
    expect(accessOf(canceling, at('2024-03-01T00:00:00Z'), policy)).toEqual(inactive);
    // The trial ran out with nobody to run trial_end: access still follows the clock.
    const expiring = started({ trialDays: 14, trialOnEnd: 'cancel' });
    expect(accessOf(expiring, at('2024-02-14T10:00:00Z'), policy)).toEqual({
      access: 'fallback',
      reason: 'trial_expired',
    });
  });
});

const STATUSES: SubscriptionStatus[] = ['trialing', 'active', 'past_due', 'paused', 'canceled', 'expired'];
const plus = (t: Date, ms: number) => new Date(t.getTime() + ms);

/** The scheduler's view: fold each due transition through applyEvent at the instant it was due. */
function foldDue(sub: Subscription, now: Date): Subscription {
  return dueTransitions(sub, now, plans, policy).reduce(
    (s, due) => applyEvent(s, due.event, due.at, plans),
    sub,
  );
}

describe('state machine properties', () => {
  it('(a) no sequence of events leaves the six statuses or breaks the stored invariants', () => {
    const stepsArb = fc.array(
      fc.record({ gapMs: fc.integer({ min: 0, max: 60 * DAY }), event: anyEventArb }),
      {
        maxLength: 30,
      },
    );
    fc.assert(
      fc.property(storedSubscriptionArb, stepsArb, ({ sub: initial, lastWrite }, steps) => {
        let sub = initial;
        let now = lastWrite;
        for (const { gapMs, event } of steps) {
          now = plus(now, gapMs);
          sub = applyIfLegal(sub, event, now);
          expect(STATUSES).toContain(sub.status);
          expect(sub.currentPeriodStart < sub.currentPeriodEnd).toBe(true);
          expect(sub.endedAt !== null).toBe(sub.status === 'canceled' || sub.status === 'expired');
          if (sub.status === 'past_due') expect(sub.pastDueSince).not.toBeNull();
          if (sub.status === 'paused') expect(sub.pausedAt).not.toBeNull();
        }
      }),
      { numRuns: 300 },
    );
  });

  it('(b) stateAt equals the scheduler folding dueTransitions, and is idempotent', () => {
    fc.assert(
      fc.property(storedSubscriptionArb, offsetArb, ({ sub, lastWrite }, offset) => {
        const now = plus(lastWrite, offset);
        const due = dueTransitions(sub, now, plans, policy);
        const ats = due.map((d) => d.at.getTime());
        expect(ats).toEqual([...ats].sort((x, y) => x - y));
        expect(ats.every((t) => t <= now.getTime())).toBe(true);
        const state = stateAt(sub, now, plans);
        expect(state).toEqual(foldDue(sub, now));
        expect(stateAt(state, now, plans)).toEqual(state);
        // Nothing stays due once applied, except the informational grace_end.
        expect(dueTransitions(state, now, plans)).toEqual([]);
        expect(() => accessOf(sub, now, policy, plans)).not.toThrow();
      }),
      { numRuns: 500 },
    );
  });

  it('(b) a scheduler persisting one transition at a time reaches the same state', () => {
    fc.assert(
      fc.property(storedSubscriptionArb, offsetArb, ({ sub, lastWrite }, offset) => {
        const now = plus(lastWrite, offset);
        const planned = dueTransitions(sub, now, plans);
        let persisted = sub;
        for (const expected of planned) {
          // Each run recomputes from what was persisted, and finds the next step of the same plan.
          const [next] = dueTransitions(persisted, now, plans);
          expect(next).toEqual(expected);
          persisted = applyEvent(persisted, next!.event, next!.at, plans);
        }
        expect(dueTransitions(persisted, now, plans)).toEqual([]);
        expect(persisted).toEqual(stateAt(sub, now, plans));
        // grace_end only adds entries; the rest of the plan is the same with or without it.
        const withGrace = dueTransitions(sub, now, plans, policy).filter((d) => d.event.type !== 'grace_end');
        expect(withGrace).toEqual(planned);
      }),
      { numRuns: 300 },
    );
  });

  it('(c) stateAt is monotone: catching up in two steps equals catching up once', () => {
    fc.assert(
      fc.property(storedSubscriptionArb, offsetArb, offsetArb, ({ sub, lastWrite }, a, b) => {
        const t1 = plus(lastWrite, Math.min(a, b));
        const t2 = plus(lastWrite, Math.max(a, b));
        expect(stateAt(stateAt(sub, t1, plans), t2, plans)).toEqual(stateAt(sub, t2, plans));
        expect(accessOf(stateAt(sub, t1, plans), t2, policy, plans)).toEqual(
          accessOf(sub, t2, policy, plans),
        );
      }),
      { numRuns: 500 },
    );
  });
});

describe('a subscription that starts later', () => {
  const startsAt = at('2024-03-01T00:00:00Z');
  const before = at('2024-02-10T00:00:00Z');

  it('is stored scheduled with its first period, and grants nothing until it starts', () => {
    const sub = started({ startsAt }, before);
    expect(sub).toMatchObject({ status: 'scheduled', startedAt: startsAt, currentPeriodStart: startsAt });
    expect(stateAt(sub, before, plans).status).toBe('scheduled');
    expect(accessOf(sub, before, policy)).toEqual({ access: 'fallback', reason: 'subscription_inactive' });
    expect(dueTransitions(sub, before, plans)).toEqual([]);
  });

  it('starts by itself at its start: active, or trialing when it has a trial', () => {
    const plain = started({ startsAt }, before);
    expect(dueTransitions(plain, startsAt, plans)).toEqual([{ at: startsAt, event: { type: 'start' } }]);
    expect(stateAt(plain, startsAt, plans)).toEqual({ ...plain, status: 'active' });
    expect(accessOf(plain, startsAt, policy).access).toBe('full');
    const trial = started({ startsAt, trialDays: 14 }, before);
    expect(trial.status).toBe('scheduled');
    expect(stateAt(trial, startsAt, plans)).toEqual({ ...trial, status: 'trialing' });
    // Later on, everything after the start follows as usual.
    expect(stateAt(trial, at('2024-03-20T00:00:00Z'), plans)).toMatchObject({ status: 'active' });
  });

  it('may be canceled or changed before it starts, and start is not a command', () => {
    const sub = started({ startsAt }, before);
    expect(apply(sub, { type: 'cancel_now' }, before)).toMatchObject({ status: 'canceled', endedAt: before });
    expect(apply(sub, { type: 'change_now', planKey: 'basic', planVersion: null }, before)).toMatchObject({
      status: 'scheduled',
      planKey: 'basic',
    });
    expect(() => apply(sub, { type: 'start' }, before)).toThrow(/its start is at/);
    expect(() => apply(sub, { type: 'pause' }, before)).toThrow();
    expect(() => apply(stateAt(sub, startsAt, plans), { type: 'start' }, startsAt)).toThrow();
  });
});
