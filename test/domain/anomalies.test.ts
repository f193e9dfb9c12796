import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  orphanOf,
  overlapOf,
  SPIKE_BASELINE_DAYS,
  SPIKE_FACTOR,
  SPIKE_MIN_USAGE,
  spikesOf,
  utcDay,
} from '../../src/domain/anomalies.ts';
import type { ConfigEntitlement, MeteredEntitlement, Subscription } from '../../src/domain/types.ts';

const DAY = 86_400_000;
const now = new Date('2026-03-20T12:00:00.000Z');

const metered = (limit: number | null): MeteredEntitlement => ({
  type: 'metered',
  feature: 'api',
  condition: null,
  limit,
  reset: 'month',
  overage: 'deny',
  notifyAtPercent: [],
  perSeat: false,
});

function sub(over: Partial<Subscription>): Subscription {
  return {
    id: 'sub_1',
    customerId: 'c',
    planKey: 'pro',
    planVersion: 1,
    addon: false,
    status: 'active',
    quantity: 1,
    startedAt: new Date('2026-01-01T00:00:00Z'),
    billingAnchor: new Date('2026-01-01T00:00:00Z'),
    trialEndsAt: null,
    trialOnEnd: null,
    trialDowngradeTo: null,
    currentPeriodStart: new Date('2026-03-01T00:00:00Z'),
    currentPeriodEnd: new Date('2026-04-01T00:00:00Z'),
    cancelAtPeriodEnd: false,
    scheduledChange: null,
    pastDueSince: null,
    pausedAt: null,
    endedAt: null,
    ...over,
  };
}

describe('overlapOf', () => {
  it('flags duplicates and overrides that take away what the plan gives', () => {
    const sso = { type: 'boolean', feature: 'sso', condition: null, enabled: true } as const;
    expect(overlapOf({ type: 'boolean', enabled: true }, sso)).toEqual({ relation: 'duplicate' });
    expect(overlapOf({ type: 'boolean', enabled: false }, sso)).toEqual({ relation: 'contradicts' });
    expect(overlapOf({ type: 'boolean', enabled: true }, { ...sso, enabled: false })).toBeNull();
    expect(overlapOf({ type: 'metered', limit: 100 }, metered(100))).toEqual({ relation: 'duplicate' });
    expect(overlapOf({ type: 'metered', limit: 50 }, metered(100))).toEqual({ relation: 'contradicts' });
    expect(overlapOf({ type: 'metered', limit: 50 }, metered(null))).toEqual({ relation: 'contradicts' });
    expect(overlapOf({ type: 'metered', limit: 500 }, metered(100))).toBeNull();
    expect(overlapOf({ type: 'metered', limit: null }, metered(100))).toBeNull();
    const cfg: ConfigEntitlement = {
      type: 'config',
      feature: 'theme',
      condition: null,
      value: { a: [1, 2] },
    };
    expect(overlapOf({ type: 'config', value: { a: [1, 2] } }, cfg)).toEqual({ relation: 'duplicate' });
    expect(overlapOf({ type: 'config', value: { a: [2, 1] } }, cfg)).toBeNull();
  });
});

describe('orphanOf', () => {
  it('flags exceptions of customers whose subscriptions all ended, and those outliving the set end', () => {
    expect(orphanOf([], null, now)).toBeNull();
    expect(orphanOf([sub({})], null, now)).toBeNull();
    const ended = sub({ status: 'canceled', endedAt: new Date('2026-03-01T00:00:00Z') });
    expect(orphanOf([ended], null, now)).toEqual({
      reason: 'subscription_ended',
      ended_at: '2026-03-01T00:00:00.000Z',
    });
    const ending = sub({ cancelAtPeriodEnd: true });
    expect(orphanOf([ending], null, now)).toMatchObject({ reason: 'outlives_subscription' });
    expect(orphanOf([ending], new Date('2026-04-15T00:00:00Z'), now)).toMatchObject({
      reason: 'outlives_subscription',
    });
    expect(orphanOf([ending], new Date('2026-03-25T00:00:00Z'), now)).toBeNull();
    // Another live subscription without an end keeps the exception anchored.
    expect(orphanOf([ending, sub({ id: 'sub_2' })], null, now)).toBeNull();
  });
});

describe('spikesOf', () => {
  const today = utcDay(now);
  const series = (baseline: number, todayUsage: number) => {
    const m = new Map<string, number>([[today, todayUsage]]);
    for (let i = 1; i <= SPIKE_BASELINE_DAYS; i++) m.set(utcDay(new Date(now.getTime() - i * DAY)), baseline);
    return m;
  };

  it('flags a day above the factor times the baseline mean and the minimum', () => {
    expect(spikesOf(series(20, 101), [today])).toHaveLength(1);
    expect(spikesOf(series(20, 100), [today])).toHaveLength(0);
    // Under the minimum, however far above the baseline.
    expect(spikesOf(series(1, 99), [today])).toHaveLength(0);
    // No baseline: a first day of use is not a spike.
    expect(spikesOf(new Map([[today, 10_000]]), [today])).toHaveLength(0);
  });

  it('agrees with the rule for any baseline and day', () => {
    fc.assert(
      fc.property(fc.nat(1000), fc.nat(100_000), (baseline, usage) => {
        const spiked = spikesOf(series(baseline, usage), [today]).length === 1;
        const expected = baseline > 0 && usage >= SPIKE_MIN_USAGE && usage > SPIKE_FACTOR * baseline;
        expect(spiked).toBe(expected);
      }),
    );
  });
});
