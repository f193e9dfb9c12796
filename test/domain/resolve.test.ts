import { describe, expect, it } from 'vitest';
import type { Period } from '../../src/domain/periods.ts';
import {
  type ResolvedEntitlements,
  type ResolvedMetered,
  resolveEntitlements,
  type UsageReader,
} from '../../src/domain/resolve.ts';
import { config, days, flag, metered, NOW, plan, snapshot } from './builders.ts';

const noUsage: UsageReader = () => ({ used: 0 });
const resolve = (s: ReturnType<typeof snapshot>, now = NOW, usage = noUsage) =>
  resolveEntitlements(s.build(), now, usage);

function meteredOf(resolved: ResolvedEntitlements, key: string): ResolvedMetered {
  const entitlement = resolved.entitlements.get(key);
  if (entitlement?.type !== 'metered') throw new Error(`${key} is not a resolved metered entitlement`);
  return entitlement;
}

describe('resolveEntitlements: layers', () => {
  it('orders layers override (newest first) > add-on (latest first) > plan, with consistent source ids', () => {
    const resolved = resolve(
      snapshot()
        .withFeature('theme', 'config')
        .onPlan('pro', [config('theme', 'plan')])
        .withAddon('brand', [config('theme', 'brand')], { startedAt: days(1) })
        .withAddon('brand2', [config('theme', 'brand2')], { startedAt: days(2) })
        .withOverride('ovr_old', 'theme', { type: 'config', value: 'old' }, { startsAt: days(1) })
        .withOverride('ovr_new', 'theme', { type: 'config', value: 'new' }, { startsAt: days(3) }),
    );
    expect(resolved.entitlements.get('theme')?.layers.map((l) => l.source)).toEqual([
      { kind: 'override', id: 'ovr_new' },
      { kind: 'override', id: 'ovr_old' },
      { kind: 'addon', id: 'sub_brand2' },
      { kind: 'addon', id: 'sub_brand' },
      { kind: 'plan', id: 'sub_pro' },
    ]);
  });

  it('multiplies per-seat limits by each subscription quantity', () => {
    const resolved = resolve(
      snapshot()
        .withFeature('api', 'metered')
        .onPlan('team', [metered('api', 10, { perSeat: true })], { quantity: 5 })
        .withAddon('boost', [metered('api', 7, { perSeat: true })], { quantity: 2 })
        .withAddon('flat', [metered('api', 3)], { quantity: 4 }),
    );
    expect(meteredOf(resolved, 'api').layers.map((l) => l.limit)).toEqual([3, 14, 50]);
  });

  it('keeps conditions on the layers for decide to evaluate', () => {
    const resolved = resolve(
      snapshot()
        .withFeature('sso', 'boolean')
        .onPlan('pro', [flag('sso', { condition: 'context.mfa' })]),
    );
    expect(resolved.entitlements.get('sso')?.layers[0]?.condition).toBe('context.mfa');
  });

  it('applies overrides from startsAt up to, not including, expiresAt, and not once ended', () => {
    const s = snapshot()
      .withFeature('sso', 'boolean')
      .withOverride(
        'ovr_window',
        'sso',
        { type: 'boolean', enabled: true },
        { startsAt: days(10), expiresAt: days(20) },
      )
      .withOverride('ovr_ended', 'sso', { type: 'boolean', enabled: true }, { endedAt: days(15) });
    const ids = (at: Date) =>
      resolve(s, at)
        .entitlements.get('sso')
        ?.layers.map((l) => l.source.id) ?? [];
    expect(ids(new Date(days(10).getTime() - 1))).toEqual(['ovr_ended']);
    expect(ids(days(10))).toEqual(['ovr_window', 'ovr_ended']);
    expect(ids(new Date(days(15).getTime() - 1))).toEqual(['ovr_window', 'ovr_ended']);
    expect(ids(days(15))).toEqual(['ovr_window']);
    expect(ids(new Date(days(20).getTime() - 1))).toEqual(['ovr_window']);
    expect(ids(days(20))).toEqual([]);
  });

  it('ignores entries and overrides whose type disagrees with the catalog, and features outside it', () => {
    const resolved = resolve(
      snapshot()
        .withFeature('sso', 'boolean')
        .onPlan('pro', [metered('sso', 5), flag('ghost')])
        .withOverride('ovr_1', 'sso', { type: 'config', value: 1 }),
    );
    expect([...resolved.entitlements.keys()]).toEqual([]);
  });

  it('still resolves an archived feature a plan references', () => {
    const resolved = resolve(
      snapshot()
        .withFeature('legacy', 'boolean', { archived: true })
        .onPlan('pro', [flag('legacy')]),
    );
    expect(resolved.entitlements.get('legacy')?.layers).toHaveLength(1);
  });
});

describe('resolveEntitlements: subscriptions', () => {
  it('uses the plan a scheduled change has switched to by now', () => {
    const resolved = resolve(
      snapshot()
        .withFeature('sso', 'boolean')
        .withFeature('basic_only', 'boolean')
        .withPlan(plan('basic', [flag('basic_only')]))
        .onPlan('pro', [flag('sso')], {
          currentPeriodEnd: new Date('2025-03-01T00:00:00Z'),
          currentPeriodStart: new Date('2025-02-01T00:00:00Z'),
          scheduledChange: { planKey: 'basic', planVersion: 1, at: new Date('2025-03-01T00:00:00Z') },
        }),
    );
    expect([...resolved.entitlements.keys()]).toEqual(['basic_only']);
    expect(resolved.entitlements.get('basic_only')?.layers[0]?.source).toEqual({
      kind: 'plan',
      id: 'sub_pro',
    });
  });

  it('falls back to the environment plan when the base has no access, and remembers why', () => {
    const resolved = resolve(
      snapshot()
        .withFeature('sso', 'boolean')
        .withFeature('docs', 'boolean')
        .withFallback('free', [flag('docs')])
        .onPlan('pro', [flag('sso')], { status: 'paused', pausedAt: days(5) }),
    );
    expect(resolved.denyReason).toBe('subscription_inactive');
    expect([...resolved.entitlements.keys()]).toEqual(['docs']);
    expect(resolved.entitlements.get('docs')?.layers[0]?.source).toEqual({
      kind: 'plan',
      id: 'fallback:free@v1',
    });
  });

  it('lets add-ons with full access contribute even when the base has none', () => {
    const resolved = resolve(
      snapshot()
        .withFeature('sso', 'boolean')
        .onPlan('pro', [], { status: 'canceled', endedAt: days(5) })
        .withAddon('sso_pack', [flag('sso')]),
    );
    expect(resolved.denyReason).toBe('subscription_inactive');
    expect(resolved.entitlements.get('sso')?.layers[0]?.source).toEqual({
      kind: 'addon',
      id: 'sub_sso_pack',
    });
  });

  it.each([
    ['no subscription at all', snapshot(), 'no_subscription'],
    ['an active base plan', snapshot().onPlan('pro', []), 'not_in_plan'],
    ['only an active add-on', snapshot().withAddon('extra', []), 'not_in_plan'],
    ['an unknown customer', snapshot().unknown().onPlan('pro', []), 'unknown_customer'],
  ] as const)('denyReason with %s is %s', (_, s, reason) => {
    expect(resolve(s).denyReason).toBe(reason);
  });
});

describe('resolveEntitlements: metered', () => {
  it('reads usage for the billing period anchored on the base subscription', () => {
    const periods: Period[] = [];
    const usage: UsageReader = (_feature, period) => {
      periods.push(period);
      return { used: 42 };
    };
    const resolved = resolve(
      snapshot()
        .withFeature('api', 'metered')
        .onPlan('pro', [metered('api', 100, { reset: 'billing_period' })], {
          billingAnchor: new Date('2025-01-10T08:00:00Z'),
        }),
      NOW,
      usage,
    );
    const api = meteredOf(resolved, 'api');
    expect(periods).toEqual([
      { start: new Date('2025-03-10T08:00:00Z'), end: new Date('2025-04-10T08:00:00Z') },
    ]);
    expect(api.used).toBe(42);
    expect(api.resetsAt).toEqual(new Date('2025-04-10T08:00:00Z'));
  });

  it('takes reset and overage from the plan entry, else the first add-on', () => {
    const s = snapshot()
      .withFeature('api', 'metered')
      .onPlan('pro', [])
      .withAddon('a1', [metered('api', 5, { reset: 'day', overage: 'allow' })], { startedAt: days(1) })
      .withAddon('a2', [metered('api', 5, { reset: 'year' })], { startedAt: days(2) });
    const api = meteredOf(resolve(s), 'api');
    expect([api.reset, api.overage]).toEqual(['day', 'allow']);
    expect(api.resetsAt).toEqual(new Date('2025-03-16T00:00:00Z'));
  });

  it('has no reset time for features that never reset, and defaults when only an override grants', () => {
    const resolved = resolve(
      snapshot()
        .withFeature('seats', 'metered')
        .withFeature('api', 'metered')
        .onPlan('pro', [metered('seats', 10, { reset: 'none' })])
        .withOverride('ovr_1', 'api', { type: 'metered', limit: 7 }),
    );
    expect(meteredOf(resolved, 'seats').resetsAt).toBeNull();
    const api = meteredOf(resolved, 'api');
    expect([api.reset, api.overage, api.resetsAt]).toEqual(['none', 'deny', null]);
  });

  it('counts credit of grants effective now, net of credit used, in burn-down order', () => {
    const resolved = resolve(
      snapshot()
        .withFeature('api', 'metered')
        .onPlan('pro', [metered('api', 100)])
        .withGrant('g_late', 'api', 50, { priority: 1 })
        .withGrant('g_first', 'api', 30, { priority: 0 })
        .withGrant('g_expired', 'api', 999, { expiresAt: days(10) })
        .withGrant('g_future', 'api', 999, { effectiveAt: days(100) })
        .withGrant('g_other', 'storage', 999),
      NOW,
      () => ({ used: 120, creditUsed: 30 }),
    );
    expect(meteredOf(resolved, 'api').credit).toEqual({
      available: 50,
      used: 30,
      sources: [{ kind: 'grant', id: 'g_late' }],
      balances: { g_first: 0 },
    });
  });

  it('prefers exact grant balances from metering', () => {
    const resolved = resolve(
      snapshot()
        .withFeature('api', 'metered')
        .onPlan('pro', [metered('api', 100)])
        .withGrant('g1', 'api', 30)
        .withGrant('g2', 'api', 50, { priority: 1 }),
      NOW,
      () => ({ used: 0, grantBalances: { g1: 30, g2: 5 } }),
    );
    expect(meteredOf(resolved, 'api').credit).toMatchObject({ available: 35, used: 45 });
  });

  it('uses calendar months for billing_period resets when there is no subscription to anchor on', () => {
    const resolved = resolve(
      snapshot()
        .withFeature('api', 'metered')
        .withFallback('free', [metered('api', 10, { reset: 'billing_period' })]),
    );
    expect(meteredOf(resolved, 'api').period).toEqual({
      start: new Date('2025-03-01T00:00:00Z'),
      end: new Date('2025-04-01T00:00:00Z'),
    });
  });
});
