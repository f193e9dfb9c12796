/**
 * What customers hold besides their base plan (add-ons, overrides, credit grants, conditions) and
 * plan version migrations, told through the HTTP API with a frozen clock.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, frozenClock, type TestApp } from '../helpers/harness.ts';
import { DAY, scenario } from '../helpers/scenario.ts';

const START = '2026-01-31T10:00:00.000Z';
let app: TestApp;
beforeAll(async () => {
  app = await createTestApp({ clock: frozenClock(START) });
});
afterAll(async () => app?.close());
beforeEach(() => {
  (app.clock as ReturnType<typeof frozenClock>).set(START);
});

const calls = (limit: number | null, extra: Record<string, unknown> = {}) => ({
  feature: 'api_calls',
  limit,
  reset: 'month',
  overage: 'deny',
  ...extra,
});

describe('overrides, grants and add-ons', () => {
  it('an override that expires grants until expires_at and not after', async () => {
    const s = await scenario(app)
      .feature('sso', 'boolean')
      .plan('basic', [])
      .customer('acme')
      .onPlan('basic')
      .withOverride('sso', { enabled: true }, { expires_at: '2026-02-02T10:00:00Z' });
    expect(await s.check('sso')).toMatchObject({ allowed: true, reason: 'granted' });
    s.at('2026-02-02T09:59:59.999Z');
    expect(await s.allowed('sso')).toBe(true);
    s.at('2026-02-02T10:00:00Z');
    expect(await s.check('sso')).toMatchObject({ allowed: false, reason: 'not_in_plan' });
  });

  it('credit from grants adds to remaining; expired and not-yet-effective grants do not', async () => {
    const s = await scenario(app)
      .feature('api_calls', 'metered')
      .plan('basic', [calls(100)])
      .customer('acme')
      .onPlan('basic')
      .withGrant('api_calls', 50, { priority: 1, expires_at: '2026-02-10T10:00:00Z' })
      .withGrant('api_calls', 30, { priority: 0 })
      .withGrant('api_calls', 20, { effective_at: '2026-02-05T10:00:00Z' });
    expect(await s.entitlement('api_calls')).toMatchObject({ limit: 100, used: 0, remaining: 180 });
    s.at('2026-02-05T10:00:00Z');
    expect(await s.entitlement('api_calls')).toMatchObject({ remaining: 200 });
    s.at('2026-02-10T10:00:00Z');
    const after = await s.entitlement('api_calls');
    expect(after).toMatchObject({ limit: 100, remaining: 150 });
    expect(after?.sources).toEqual(expect.arrayContaining([expect.objectContaining({ kind: 'grant' })]));
  });

  it('add-ons stack on the base plan and end on their own', async () => {
    const s = await scenario(app)
      .feature('sso', 'boolean')
      .feature('audit_log', 'boolean')
      .plan('basic', [{ feature: 'sso' }])
      .addon('compliance', [{ feature: 'audit_log' }])
      .customer('acme')
      .onPlan('basic')
      .onPlan('compliance');
    expect(await s.allowed('audit_log')).toBe(true);
    const canceled = await s.command('cancel', { timing: 'immediate' }, 'compliance');
    expect(canceled.body).toMatchObject({ status: 'canceled', addon: true });
    expect(await s.check('audit_log')).toMatchObject({ allowed: false, reason: 'not_in_plan' });
    expect(await s.allowed('sso')).toBe(true);
  });
});

describe('conditions', () => {
  it('a plan entitlement with a condition follows the check’s context and the customer’s attributes', async () => {
    const s = await scenario(app)
      .feature('sso', 'boolean')
      .feature('export', 'boolean')
      .plan('pro', [
        { feature: 'sso', condition: 'context.device_compliant == true' },
        { feature: 'export', condition: "customer.attributes.region == 'eu'" },
      ])
      .customer('acme', { region: 'eu' })
      .onPlan('pro');
    expect(await s.check('sso', { context: { device_compliant: true } })).toMatchObject({ allowed: true });
    expect(await s.check('sso', { context: { device_compliant: false } })).toMatchObject({
      allowed: false,
      reason: 'condition_failed',
    });
    expect(await s.allowed('export')).toBe(true);
    await s.call('PUT', `/v1/customers/${s.customerId}`, { attributes: { region: 'us' } });
    expect(await s.check('export')).toMatchObject({ allowed: false, reason: 'condition_failed' });
  });
});

describe('plan version migration', () => {
  it('a dry run lists who gains and loses what; the real run moves them, audited, once', async () => {
    const s = await scenario(app)
      .feature('sso', 'boolean')
      .feature('audit_log', 'boolean')
      .feature('theme', 'config')
      .feature('api_calls', 'metered')
      .plan('pro', [{ feature: 'sso' }, { feature: 'theme', value: 'light' }, calls(100, { per_seat: true })])
      .customer('big')
      .onPlan('pro', { quantity: 3 });
    const bigSub = s.subscriptionId();
    await s.customer('small');
    await s.subscribe('pro');
    await s.planVersion('pro', [
      { feature: 'audit_log' },
      { feature: 'theme', value: 'dark' },
      calls(200, { per_seat: true }),
    ]);
    expect(await s.allowed('sso')).toBe(true);

    const path = `/v1/plans/${s.key('pro')}/migrate`;
    const dry = await s.call<Record<string, unknown>>('POST', path, {
      from_version: 1,
      to_version: 2,
      dry_run: true,
    });
    expect(dry).toMatchObject({
      dry_run: true,
      affected: 2,
      migrated: 0,
      changes: {
        features_added: [s.key('audit_log')],
        features_removed: [s.key('sso')],
        values_changed: [{ feature: s.key('theme'), from: 'light', to: 'dark' }],
        limits_changed: [{ feature: s.key('api_calls'), from: 100, to: 200, direction: 'raised' }],
      },
    });
    const big = (dry.subscriptions as Array<Record<string, unknown>>).find(
      (x) => x.subscription_id === bigSub,
    );
    expect(big).toMatchObject({
      customer_id: s.key('big'),
      quantity: 3,
      limits_changed: [{ feature: s.key('api_calls'), from: 300, to: 600, direction: 'raised' }],
    });
    expect(await s.allowed('sso')).toBe(true);

    s.advance(DAY);
    const real = await s.call('POST', path, { from_version: 1, to_version: 2, dry_run: false });
    expect(real).toMatchObject({ dry_run: false, affected: 2, migrated: 2 });
    expect(await s.check('sso')).toMatchObject({ allowed: false, reason: 'not_in_plan' });
    expect(await s.allowed('audit_log')).toBe(true);
    expect(await s.check('theme')).toMatchObject({ value: 'dark' });
    expect(await s.subscription()).toMatchObject({ plan_version: 2 });
    const audit = await s.call<{ data: Array<{ after: { plan_version: number } }> }>(
      'GET',
      `/v1/audit-events?action=subscription.migrated&customer_id=${s.key('big')}`,
    );
    expect(audit.data).toHaveLength(1);
    expect(audit.data[0]?.after.plan_version).toBe(2);
    const again = await s.call('POST', path, { from_version: 1, to_version: 2, dry_run: false });
    expect(again).toMatchObject({ affected: 0, migrated: 0 });
  });

  it('names the bad version and answers 404 for an unknown plan', async () => {
    const s = await scenario(app).plan('pro', []);
    const bad = await app.json('POST', `/v1/plans/${s.key('pro')}/migrate`, {
      from_version: 1,
      to_version: 9,
      dry_run: true,
    });
    expect(bad.status).toBe(422);
    expect(bad.body).toMatchObject({ code: 'unknown_plan_version', errors: [{ path: 'to_version' }] });
    const same = await app.json('POST', `/v1/plans/${s.key('pro')}/migrate`, {
      from_version: 1,
      to_version: 1,
      dry_run: true,
    });
    expect(same.status).toBe(422);
    const missing = await app.json('POST', '/v1/plans/nope/migrate', {
      from_version: 1,
      to_version: 2,
      dry_run: true,
    });
    expect(missing.status).toBe(404);
    const invalid = await app.json('POST', `/v1/plans/${s.key('pro')}/migrate`, { from_version: 1 });
    expect(invalid.status).toBe(400);
  });
});
