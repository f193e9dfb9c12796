/**
 * Subscription lifecycles told end to end through the HTTP API with a frozen clock. No scheduler
 * runs here: every answer derives the state from the stored timestamps and `now`.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
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

/** free: 100 calls; pro: SSO and 1000 calls. */
const catalog = () =>
  scenario(app)
    .feature('sso', 'boolean')
    .feature('api_calls', 'metered')
    .plan('free', [{ feature: 'api_calls', limit: 100, reset: 'month', overage: 'deny' }])
    .plan('pro', [
      { feature: 'sso' },
      { feature: 'api_calls', limit: 1000, reset: 'month', overage: 'deny' },
    ]);

describe('trials', () => {
  it('trial -> convert: the trial ends now and paid periods anchor on the conversion', async () => {
    const s = await catalog()
      .plan('trialled', [{ feature: 'sso' }], { trial: { days: 14, on_end: 'convert' } })
      .customer('acme')
      .onPlan('trialled');
    const trial = await s.subscription();
    expect(trial).toMatchObject({ status: 'trialing', trial_ends_at: '2026-02-14T10:00:00.000Z' });
    expect(await s.allowed('sso')).toBe(true);

    s.advance(3 * DAY);
    const converted = await s.command('convert');
    expect(converted.status).toBe(200);
    expect(converted.body).toMatchObject({
      status: 'active',
      trial_ends_at: '2026-02-03T10:00:00.000Z',
      current_period_start: '2026-02-03T10:00:00.000Z',
      current_period_end: '2026-03-03T10:00:00.000Z',
    });
    expect(await s.allowed('sso')).toBe(true);
    const again = await s.command('convert');
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({
      code: 'illegal_transition',
      detail: expect.stringContaining('active'),
    });
  });

  it('converts by itself when the trial ends with on_end convert', async () => {
    const s = await catalog()
      .plan('trialled', [{ feature: 'sso' }], { trial: { days: 14, on_end: 'convert' } })
      .customer('acme')
      .onPlan('trialled');
    s.advance(14 * DAY);
    expect(await s.subscription()).toMatchObject({
      status: 'active',
      current_period_start: '2026-02-14T10:00:00.000Z',
      current_period_end: '2026-03-14T10:00:00.000Z',
    });
  });

  it('trial -> downgrade: after the trial the customer holds the downgrade plan', async () => {
    const s = await catalog()
      .plan(
        'trialled',
        [{ feature: 'sso' }, { feature: 'api_calls', limit: 1000, reset: 'month', overage: 'deny' }],
        {
          trial: { days: 7, on_end: 'downgrade', downgrade_to: 'free' },
        },
      )
      .customer('acme')
      .onPlan('trialled');
    expect(await s.allowed('sso')).toBe(true);
    s.advance(7 * DAY - 1);
    expect((await s.subscription()).status).toBe('trialing');
    s.advance(1);
    expect(await s.subscription()).toMatchObject({ status: 'active', plan: s.key('free'), plan_version: 1 });
    expect(await s.check('sso')).toMatchObject({ allowed: false, reason: 'not_in_plan' });
    expect(await s.check('api_calls')).toMatchObject({ allowed: true, limit: 100 });
  });

  it('a trial that cancels on end expires, and checks say trial_expired', async () => {
    const s = await catalog()
      .plan('trialled', [{ feature: 'sso' }], { trial: { days: 7, on_end: 'cancel' } })
      .customer('acme')
      .onPlan('trialled');
    s.advance(8 * DAY);
    expect(await s.subscription()).toMatchObject({ status: 'expired', ended_at: '2026-02-07T10:00:00.000Z' });
    expect(await s.check('sso')).toMatchObject({ allowed: false, reason: 'trial_expired' });
  });
});

describe('plan changes', () => {
  it('upgrade mid-period: the new entitlements apply at once', async () => {
    const s = await catalog().customer('acme').onPlan('free');
    s.advance(10 * DAY);
    expect(await s.check('sso')).toMatchObject({ allowed: false, reason: 'not_in_plan' });
    const before = (await s.check('api_calls')).version as number;
    const changed = await s.change('pro', 'immediate');
    expect(changed).toMatchObject({ plan: s.key('pro'), scheduled_change: null, status: 'active' });
    expect(await s.allowed('sso')).toBe(true);
    expect(await s.check('api_calls')).toMatchObject({ limit: 1000, version: before + 1 });
  });

  it('downgrade at period end: old entitlements until the end, new ones after', async () => {
    const s = await catalog().customer('acme').onPlan('pro');
    s.advance(5 * DAY);
    const scheduled = await s.change('free', 'period_end');
    const end = scheduled.current_period_end as string;
    expect(end).toBe('2026-02-28T10:00:00.000Z');
    expect(scheduled).toMatchObject({
      plan: s.key('pro'),
      scheduled_change: { plan: s.key('free'), at: end },
    });
    s.at(new Date(new Date(end).getTime() - 1));
    expect(await s.allowed('sso')).toBe(true);
    s.at(end);
    expect(await s.check('sso')).toMatchObject({ allowed: false, reason: 'not_in_plan' });
    expect(await s.check('api_calls')).toMatchObject({ limit: 100 });
    expect(await s.subscription()).toMatchObject({
      plan: s.key('free'),
      scheduled_change: null,
      current_period_start: end,
      current_period_end: '2026-03-31T10:00:00.000Z',
    });
  });

  it('a scheduled downgrade can be called off', async () => {
    const s = await catalog().customer('acme').onPlan('pro');
    await s.change('free', 'period_end');
    const res = await s.app.json('DELETE', `/v1/subscriptions/${s.subscriptionId()}/scheduled-change`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ scheduled_change: null, plan: s.key('pro') });
    s.advance(40 * DAY);
    expect(await s.allowed('sso')).toBe(true);
  });
});

describe('payments, pauses and cancellations', () => {
  it('payment failure -> grace -> fallback plan -> recovery', async () => {
    const s = await catalog()
      .settings({ past_due_grace_days: 3, fallback_plan: 'free' })
      .customer('acme')
      .onPlan('pro');
    onTestFinished(async () => {
      await s.call('PATCH', '/v1/settings', { fallback_plan: null, past_due_grace_days: 3 });
    });
    s.advance(2 * DAY);
    const failed = await s.command('payment-failed');
    expect(failed.body).toMatchObject({ status: 'past_due', past_due_since: '2026-02-02T10:00:00.000Z' });
    s.advance(3 * DAY - 1);
    expect(await s.allowed('sso')).toBe(true);
    s.advance(1);
    expect(await s.check('sso')).toMatchObject({ allowed: false, reason: 'past_due_grace_ended' });
    expect(await s.check('api_calls')).toMatchObject({ allowed: true, limit: 100 });
    const recovered = await s.command('payment-recovered');
    expect(recovered.body).toMatchObject({ status: 'active', past_due_since: null });
    expect(await s.allowed('sso')).toBe(true);
    expect(await s.check('api_calls')).toMatchObject({ limit: 1000 });
  });

  it('pause -> resume: no access while paused; periods keep their anchor', async () => {
    const s = await catalog().customer('acme').onPlan('pro');
    s.advance(DAY);
    expect((await s.command('pause')).body).toMatchObject({
      status: 'paused',
      paused_at: '2026-02-01T10:00:00.000Z',
    });
    expect(await s.check('sso')).toMatchObject({ allowed: false, reason: 'subscription_inactive' });
    s.advance(40 * DAY);
    expect((await s.subscription()).status).toBe('paused');
    const resumed = await s.command('resume');
    expect(resumed.body).toMatchObject({
      status: 'active',
      paused_at: null,
      current_period_start: '2026-02-28T10:00:00.000Z',
      current_period_end: '2026-03-31T10:00:00.000Z',
    });
    expect(await s.allowed('sso')).toBe(true);
  });

  it('cancel at period end: access until the end; undoable; a new base plan may start after', async () => {
    const s = await catalog().customer('acme').onPlan('pro');
    const canceling = await s.command('cancel', { timing: 'period_end' });
    expect(canceling.body).toMatchObject({ status: 'active', cancel_at_period_end: true });
    expect((await s.command('uncancel')).body).toMatchObject({ cancel_at_period_end: false });
    await s.command('cancel', { timing: 'period_end' });
    const end = (await s.subscription()).current_period_end as string;
    s.at(new Date(new Date(end).getTime() - 1));
    expect(await s.allowed('sso')).toBe(true);
    s.at(end);
    expect(await s.subscription()).toMatchObject({ status: 'canceled', ended_at: end });
    expect(await s.check('sso')).toMatchObject({ allowed: false, reason: 'subscription_inactive' });
    const next = await s.subscribe('free');
    expect(next).toMatchObject({ status: 'active', plan: s.key('free') });
  });
});
