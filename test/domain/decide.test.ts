import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ConditionContext } from '../../src/domain/conditions.ts';
import { decide, describeEntitlements } from '../../src/domain/decide.ts';
import { resolveEntitlements, type UsageReading } from '../../src/domain/resolve.ts';
import type { DecisionReason, OverrideEffect, PlanEntitlement } from '../../src/domain/types.ts';
import { config, days, flag, metered, NOW, snapshot } from './builders.ts';

type Builder = ReturnType<typeof snapshot>;

function check(
  s: Builder,
  feature: string,
  { quantity = 1, context = {}, usage = { used: 0 }, now = NOW } = {} as {
    quantity?: number;
    context?: ConditionContext;
    usage?: UsageReading;
    now?: Date;
  },
) {
  const built = s.build();
  const resolved = resolveEntitlements(built, now, () => usage);
  return decide(resolved, feature, quantity, context, built.attributes);
}

describe('precedence: override > add-on > plan', () => {
  type Row = [string, PlanEntitlement[], PlanEntitlement[] | null, OverrideEffect | null, boolean];
  it.each<Row>([
    ['plan on', [flag('sso')], null, null, true],
    ['plan off', [flag('sso', { enabled: false })], null, null, false],
    ['add-on enables what the plan disables', [flag('sso', { enabled: false })], [flag('sso')], null, true],
    [
      'add-on cannot disable what the plan enables',
      [flag('sso')],
      [flag('sso', { enabled: false })],
      null,
      true,
    ],
    ['override disables', [flag('sso')], [flag('sso')], { type: 'boolean', enabled: false }, false],
    ['override enables', [], null, { type: 'boolean', enabled: true }, true],
  ])('boolean: %s', (_, planEntries, addonEntries, override, allowed) => {
    let s = snapshot().withFeature('sso', 'boolean').onPlan('pro', planEntries);
    if (addonEntries) s = s.withAddon('extra', addonEntries);
    if (override) s = s.withOverride('ovr_1', 'sso', override);
    expect(check(s, 'sso').allowed).toBe(allowed);
  });

  it('config: override > last add-on > plan', () => {
    const base = () =>
      snapshot()
        .withFeature('theme', 'config')
        .onPlan('pro', [config('theme', 'plan')]);
    expect(check(base(), 'theme').value).toBe('plan');
    const withAddons = () =>
      base()
        .withAddon('a1', [config('theme', 'first')], { startedAt: days(1) })
        .withAddon('a2', [config('theme', 'last')], { startedAt: days(2) });
    expect(check(withAddons(), 'theme')).toMatchObject({
      allowed: true,
      value: 'last',
      sources: [{ id: 'sub_a2' }],
    });
    const overridden = withAddons().withOverride('ovr_1', 'theme', { type: 'config', value: { dark: true } });
    expect(check(overridden, 'theme').value).toEqual({ dark: true });
  });

  it('metered: add-on limits add to the plan, per seat, and an override replaces the sum', () => {
    const s = () =>
      snapshot()
        .withFeature('api', 'metered')
        .onPlan('team', [metered('api', 100, { perSeat: true })], { quantity: 3 })
        .withAddon('boost', [metered('api', 50)]);
    expect(check(s(), 'api').limit).toBe(350);
    expect(check(s().withOverride('ovr_1', 'api', { type: 'metered', limit: 10 }), 'api').limit).toBe(10);
  });

  it('metered: null anywhere is unlimited, and an override can cap it again', () => {
    const s = () =>
      snapshot()
        .withFeature('api', 'metered')
        .onPlan('pro', [metered('api', 100)])
        .withAddon('unlimited', [metered('api', null)]);
    expect(check(s(), 'api', { quantity: 1e9 })).toMatchObject({
      allowed: true,
      limit: null,
      remaining: null,
    });
    const capped = s().withOverride('ovr_1', 'api', { type: 'metered', limit: 5 });
    expect(check(capped, 'api', { quantity: 6 })).toMatchObject({ allowed: false, reason: 'limit_exceeded' });
  });

  it('an override stops applying at its expiresAt', () => {
    const s = snapshot()
      .withFeature('sso', 'boolean')
      .onPlan('pro', [])
      .withOverride('ovr_1', 'sso', { type: 'boolean', enabled: true }, { expiresAt: days(30) });
    expect(check(s, 'sso', { now: new Date(days(30).getTime() - 1) }).allowed).toBe(true);
    expect(check(s, 'sso', { now: days(30) })).toMatchObject({ allowed: false, reason: 'not_in_plan' });
  });
});

describe('an override that disables a feature', () => {
  it('answers disabled_by_override, whatever the plan or the subscription says', () => {
    const disabled = { type: 'boolean', enabled: false } as const;
    const onPlan = () =>
      snapshot()
        .withFeature('sso', 'boolean')
        .onPlan('pro', [flag('sso')]);
    expect(check(onPlan().withOverride('ovr_1', 'sso', disabled), 'sso')).toMatchObject({
      allowed: false,
      reason: 'disabled_by_override',
      sources: [{ kind: 'override', id: 'ovr_1' }],
    });
    const notInPlan = snapshot().withFeature('sso', 'boolean').onPlan('pro', []);
    expect(check(notInPlan.withOverride('ovr_1', 'sso', disabled), 'sso').reason).toBe(
      'disabled_by_override',
    );
    // An override whose condition does not hold disables nothing: the plan speaks.
    const conditional = onPlan().withOverride('ovr_1', 'sso', disabled, { condition: 'context.blocked' });
    expect(check(conditional, 'sso', { context: { blocked: false } })).toMatchObject({ allowed: true });
    expect(check(conditional, 'sso', { context: { blocked: true } }).reason).toBe('disabled_by_override');
  });
});

describe('metered decisions', () => {
  const api = (limit: number | null, overage: 'deny' | 'allow' = 'deny') =>
    snapshot()
      .withFeature('api', 'metered')
      .onPlan('pro', [metered('api', limit, { overage })]);

  it('allows while used + quantity fits the limit', () => {
    expect(check(api(100), 'api', { quantity: 10, usage: { used: 90 } })).toMatchObject({
      allowed: true,
      reason: 'granted',
      limit: 100,
      used: 90,
      remaining: 10,
      resetsAt: new Date('2025-04-01T00:00:00Z'),
      overageUsed: 0,
      sources: [{ kind: 'plan', id: 'sub_pro' }],
    });
    expect(check(api(100), 'api', { quantity: 11, usage: { used: 90 } })).toMatchObject({
      allowed: false,
      reason: 'limit_exceeded',
    });
  });

  it('lets credit grants extend the limit, and lists them as sources', () => {
    const s = api(100).withGrant('g1', 'api', 20);
    const decision = check(s, 'api', { quantity: 30, usage: { used: 90 } });
    expect(decision).toMatchObject({ allowed: true, remaining: 30 });
    expect(decision.sources).toEqual([
      { kind: 'plan', id: 'sub_pro' },
      { kind: 'grant', id: 'g1' },
    ]);
    expect(check(s, 'api', { quantity: 31, usage: { used: 90 } }).allowed).toBe(false);
  });

  it('does not charge usage already paid by credit against the credit again', () => {
    // 100 limit + 20 credit; 110 used, of which 10 drew credit: 10 left.
    const s = api(100).withGrant('g1', 'api', 20);
    expect(check(s, 'api', { quantity: 10, usage: { used: 110, creditUsed: 10 } })).toMatchObject({
      allowed: true,
      remaining: 10,
      overageUsed: 0,
    });
    expect(check(s, 'api', { quantity: 11, usage: { used: 110, creditUsed: 10 } }).allowed).toBe(false);
  });

  it('allows past the limit under overage allow and reports the overage', () => {
    expect(check(api(100, 'allow'), 'api', { quantity: 50, usage: { used: 130 } })).toMatchObject({
      allowed: true,
      reason: 'granted',
      remaining: 0,
      overageUsed: 30,
    });
  });
});

describe('conditions', () => {
  const s = () =>
    snapshot()
      .withAttributes({ region: 'eu' })
      .withFeature('sso', 'boolean')
      .onPlan('pro', [
        flag('sso', { condition: "context.device_compliant && customer.attributes.region in ['eu','us']" }),
      ]);

  it('grants when the condition holds and answers condition_failed when it does not', () => {
    expect(check(s(), 'sso', { context: { device_compliant: true } })).toMatchObject({ allowed: true });
    expect(check(s(), 'sso', { context: { device_compliant: false } })).toMatchObject({
      allowed: false,
      reason: 'condition_failed',
    });
    expect(check(s(), 'sso').reason).toBe('condition_failed');
  });

  it('falls back to lower layers when an override condition fails', () => {
    const t = snapshot()
      .withFeature('api', 'metered')
      .onPlan('pro', [metered('api', 100)])
      .withOverride('ovr_1', 'api', { type: 'metered', limit: 1000 }, { condition: 'context.burst' });
    expect(check(t, 'api', { context: { burst: true } }).limit).toBe(1000);
    expect(check(t, 'api', { context: { burst: false } }).limit).toBe(100);
  });
});

describe('every reason is reachable', () => {
  const sso = () => snapshot().withFeature('sso', 'boolean');
  const cases: Array<[DecisionReason, Builder, Parameters<typeof check>[2]?]> = [
    ['granted', sso().onPlan('pro', [flag('sso')])],
    ['not_in_plan', sso().onPlan('pro', [])],
    [
      'limit_exceeded',
      snapshot()
        .withFeature('api', 'metered')
        .onPlan('pro', [metered('api', 1)]),
      { usage: { used: 1 } },
    ],
    ['no_subscription', sso()],
    ['subscription_inactive', sso().onPlan('pro', [flag('sso')], { status: 'canceled', endedAt: days(5) })],
    [
      'trial_expired',
      sso().onPlan('pro', [flag('sso')], {
        status: 'trialing',
        trialEndsAt: days(14),
        trialOnEnd: 'cancel',
        currentPeriodEnd: days(14),
      }),
    ],
    [
      'past_due_grace_ended',
      sso().onPlan('pro', [flag('sso')], { status: 'past_due', pastDueSince: days(-4, NOW) }),
    ],
    ['condition_failed', sso().onPlan('pro', [flag('sso', { condition: 'context.ok' })])],
    [
      'unknown_customer',
      sso()
        .unknown()
        .onPlan('pro', [flag('sso')]),
    ],
    ['unknown_feature', snapshot().onPlan('pro', [flag('sso')])],
  ];
  it.each(cases)('%s', (reason, s, options) => {
    const feature = reason === 'limit_exceeded' ? 'api' : 'sso';
    const decision = check(s, feature, options);
    expect(decision.reason).toBe(reason);
    expect(decision.allowed).toBe(reason === 'granted');
  });

  it('answers unknown_customer before unknown_feature', () => {
    expect(check(snapshot().unknown(), 'nope').reason).toBe('unknown_customer');
  });
});

describe('decide properties', () => {
  it('metered: allowed is monotone non-increasing in quantity', () => {
    const arb = fc.record({
      limit: fc.option(fc.integer({ min: 0, max: 200 }), { nil: null }),
      addonLimit: fc.option(fc.integer({ min: 0, max: 200 }), { nil: null }),
      overage: fc.constantFrom('deny' as const, 'allow' as const),
      grant: fc.integer({ min: 0, max: 100 }),
      used: fc.integer({ min: 0, max: 400 }),
      creditUsed: fc.integer({ min: 0, max: 100 }),
      q1: fc.integer({ min: 0, max: 500 }),
      q2: fc.integer({ min: 0, max: 500 }),
    });
    fc.assert(
      fc.property(arb, (a) => {
        const s = snapshot()
          .withFeature('api', 'metered')
          .onPlan('pro', [metered('api', a.limit, { overage: a.overage })])
          .withAddon('extra', [metered('api', a.addonLimit)])
          .withGrant('g1', 'api', a.grant);
        const usage = { used: a.used, creditUsed: Math.min(a.creditUsed, a.grant) };
        const [small, large] = a.q1 <= a.q2 ? [a.q1, a.q2] : [a.q2, a.q1];
        const allowedLarge = check(s, 'api', { quantity: large, usage }).allowed;
        const allowedSmall = check(s, 'api', { quantity: small, usage }).allowed;
        expect(!allowedLarge || allowedSmall).toBe(true);
      }),
    );
  });
});

describe('describeEntitlements', () => {
  it('lists every live feature, plus archived ones still held, with access evaluated in context', () => {
    const built = snapshot()
      .withFeature('sso', 'boolean')
      .withFeature('theme', 'config')
      .withFeature('api', 'metered')
      .withFeature('old', 'boolean', { archived: true })
      .withFeature('gone', 'boolean', { archived: true })
      .onPlan('pro', [
        flag('sso', { condition: 'context.mfa' }),
        config('theme', 'dark'),
        metered('api', 100, { overage: 'allow' }),
        flag('old'),
      ])
      .withGrant('g1', 'api', 5)
      .build();
    const resolved = resolveEntitlements(built, NOW, () => ({ used: 100 }));
    expect(describeEntitlements(resolved, built.attributes, {})).toEqual([
      {
        feature: 'api',
        type: 'metered',
        hasAccess: true,
        limit: 100,
        used: 100,
        remaining: 5,
        resetsAt: new Date('2025-04-01T00:00:00Z'),
        overageUsed: 0,
        overageMode: 'allow',
        sources: [
          { kind: 'plan', id: 'sub_pro' },
          { kind: 'grant', id: 'g1' },
        ],
      },
      {
        feature: 'old',
        type: 'boolean',
        hasAccess: true,
        enabled: true,
        sources: [{ kind: 'plan', id: 'sub_pro' }],
      },
      { feature: 'sso', type: 'boolean', hasAccess: false, enabled: false, sources: [] },
      {
        feature: 'theme',
        type: 'config',
        hasAccess: true,
        value: 'dark',
        sources: [{ kind: 'plan', id: 'sub_pro' }],
      },
    ]);
    expect(describeEntitlements(resolved, built.attributes, { mfa: true })[2]).toMatchObject({
      hasAccess: true,
    });
  });

  it('reports no access for a metered feature with nothing left under deny', () => {
    const built = snapshot()
      .withFeature('api', 'metered')
      .onPlan('pro', [metered('api', 10)])
      .build();
    const resolved = resolveEntitlements(built, NOW, () => ({ used: 10 }));
    expect(describeEntitlements(resolved)[0]).toMatchObject({ hasAccess: false, remaining: 0 });
  });

  it('is empty for an unknown customer', () => {
    const resolved = resolveEntitlements(snapshot().unknown().build(), NOW, () => ({ used: 0 }));
    expect(describeEntitlements(resolved)).toEqual([]);
  });
});
