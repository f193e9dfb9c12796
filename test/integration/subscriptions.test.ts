/** Per-route happy, error and security paths of the subscription API, and its concurrency. */
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFinished } from 'vitest';
import { createTestApp, frozenClock, type TestApp } from '../helpers/harness.ts';
import { type Scenario, scenario } from '../helpers/scenario.ts';
import { expectAdminOnly, expectHiddenFromOtherEnvironment } from '../helpers/security.ts';

let app: TestApp;
beforeAll(async () => {
  app = await createTestApp({ clock: frozenClock('2026-01-31T10:00:00Z') });
});
afterAll(async () => app?.close());
beforeEach(() => {
  (app.clock as ReturnType<typeof frozenClock>).set('2026-01-31T10:00:00Z');
});

type Body = Record<string, unknown>;
const SUBSCRIPTION_KEYS = [
  'id',
  'customer_id',
  'plan',
  'plan_version',
  'addon',
  'status',
  'quantity',
  'started_at',
  'trial_ends_at',
  'current_period_start',
  'current_period_end',
  'cancel_at_period_end',
  'scheduled_change',
  'ended_at',
];

/** A base plan with a trial, a base plan without, an add-on; one customer. */
async function setup(): Promise<Scenario> {
  return await scenario(app)
    .feature('sso', 'boolean')
    .feature('seats_calls', 'metered')
    .plan('pro', [
      { feature: 'sso' },
      { feature: 'seats_calls', limit: 10, reset: 'month', overage: 'deny', per_seat: true },
    ])
    .plan('trialled', [{ feature: 'sso' }], { trial: { days: 14, on_end: 'convert' } })
    .addon('extra', [])
    .addon('extra2', [])
    .customer('acme');
}

describe('POST /v1/customers/{customer_id}/subscriptions', () => {
  it('creates a subscription with the documented shape, audited and announced', async () => {
    const s = await setup();
    const res = await app.json<Body>('POST', `/v1/customers/${s.customerId}/subscriptions`, {
      plan: s.key('pro'),
      quantity: 2,
    });
    expect(res.status).toBe(201);
    for (const key of SUBSCRIPTION_KEYS) expect(res.body).toHaveProperty(key);
    expect(res.body).toMatchObject({
      id: expect.stringMatching(/^sub_/),
      customer_id: s.customerId,
      plan: s.key('pro'),
      plan_version: 1,
      addon: false,
      status: 'active',
      quantity: 2,
      started_at: '2026-01-31T10:00:00.000Z',
      trial_ends_at: null,
      current_period_start: '2026-01-31T10:00:00.000Z',
      current_period_end: '2026-02-28T10:00:00.000Z',
      cancel_at_period_end: false,
      scheduled_change: null,
      ended_at: null,
    });
    const audit = await s.call<{ data: Body[] }>(
      'GET',
      `/v1/audit-events?action=subscription.created&customer_id=${s.customerId}`,
    );
    expect(audit.data[0]).toMatchObject({
      target: { type: 'subscription', id: res.body.id },
      before: null,
      after: { quantity: 2 },
    });
    const events = await app.runtime.deps.db
      .selectFrom('outbox')
      .select(['topic', 'payload'])
      .where('customer_id', '=', s.customerId)
      .where('topic', '=', 'subscription.updated')
      .execute();
    expect(events).toHaveLength(1);
    expect(events[0]?.payload).toMatchObject({
      action: 'subscription.created',
      subscription: { id: res.body.id },
    });
    expect((await s.check('seats_calls')).limit).toBe(20);
  });

  it('takes the trial from the plan, or trial_days (0: none)', async () => {
    const s = await setup();
    expect(await s.subscribe('trialled')).toMatchObject({
      status: 'trialing',
      trial_ends_at: '2026-02-14T10:00:00.000Z',
    });
    const t = await setup();
    expect(await t.subscribe('trialled', { trial_days: 3 })).toMatchObject({
      trial_ends_at: '2026-02-03T10:00:00.000Z',
    });
    const u = await setup();
    expect(await u.subscribe('trialled', { trial_days: 0 })).toMatchObject({
      status: 'active',
      trial_ends_at: null,
    });
    const v = await setup();
    expect(await v.subscribe('pro', { trial_days: 5 })).toMatchObject({
      status: 'trialing',
      trial_ends_at: '2026-02-05T10:00:00.000Z',
    });
  });

  it('one live base plan (409 base_plan_exists), any number of add-ons', async () => {
    const s = await setup();
    await s.subscribe('pro');
    const second = await app.json('POST', `/v1/customers/${s.customerId}/subscriptions`, {
      plan: s.key('trialled'),
    });
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({ code: 'base_plan_exists' });
    for (const addon of ['extra', 'extra', 'extra2']) expect((await s.subscribe(addon)).addon).toBe(true);
    const list = await s.call<{ data: Body[] }>('GET', `/v1/customers/${s.customerId}/subscriptions`);
    expect(list.data).toHaveLength(4);
  });

  it('without repeat trials: no second trial (silently from the plan, 409 when asked for)', async () => {
    const s = await setup();
    await s.subscribe('trialled');
    await s.command('cancel', { timing: 'immediate' });
    const explicit = await app.json('POST', `/v1/customers/${s.customerId}/subscriptions`, {
      plan: s.key('trialled'),
      trial_days: 7,
    });
    expect(explicit.status).toBe(409);
    expect(explicit.body).toMatchObject({ code: 'trial_already_used' });
    expect(await s.subscribe('trialled')).toMatchObject({ status: 'active', trial_ends_at: null });

    await s.call('PATCH', '/v1/settings', { allow_repeat_trials: true });
    onTestFinished(() => s.call('PATCH', '/v1/settings', { allow_repeat_trials: false }).then(() => {}));
    await s.command('cancel', { timing: 'immediate' }, 'trialled');
    expect(await s.subscribe('trialled')).toMatchObject({ status: 'trialing' });
  });

  it('answers 422 naming plan / plan_version, 404 for an unknown customer, 400 for bad input', async () => {
    const s = await setup();
    const path = `/v1/customers/${s.customerId}/subscriptions`;
    const plan = await app.json('POST', path, { plan: 'nope' });
    expect(plan.status).toBe(422);
    expect(plan.body).toMatchObject({ code: 'unknown_plan', errors: [{ path: 'plan' }] });
    const version = await app.json('POST', path, { plan: s.key('pro'), plan_version: 7 });
    expect(version.status).toBe(422);
    expect(version.body).toMatchObject({ code: 'unknown_plan_version', errors: [{ path: 'plan_version' }] });
    const customer = await app.json('POST', '/v1/customers/ghost/subscriptions', { plan: s.key('pro') });
    expect(customer.status).toBe(404);
    const bad = await app.json<{ errors: Array<{ path: string }> }>('POST', path, {
      plan: s.key('pro'),
      quantity: 0,
      colour: 'red',
    });
    expect(bad.status).toBe(400);
    expect(bad.body.errors.map((e) => e.path).sort()).toEqual(['colour', 'quantity']);
    expect(
      (await s.call<{ data: Body[] }>('GET', `/v1/customers/${s.customerId}/subscriptions`)).data,
    ).toEqual([]);
  });

  it('creates exactly one base subscription out of 10 parallel requests', async () => {
    const s = await setup();
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        app.json('POST', `/v1/customers/${s.customerId}/subscriptions`, { plan: s.key('pro') }),
      ),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(
      results.filter((r) => r.status === 409).every((r) => (r.body as Body).code === 'base_plan_exists'),
    ).toBe(true);
    expect(results.filter((r) => r.status === 409)).toHaveLength(9);
    const rows = await app.runtime.deps.db
      .selectFrom('subscriptions')
      .select('id')
      .where('customer_id', '=', s.customerId)
      .execute();
    expect(rows).toHaveLength(1);
  });

  it('replays the first answer for the same Idempotency-Key', async () => {
    const s = await setup();
    const headers = { 'idempotency-key': `sub-${s.suffix}` };
    const path = `/v1/customers/${s.customerId}/subscriptions`;
    const first = await app.json<Body>('POST', path, { plan: s.key('extra') }, { headers });
    const second = await app.json<Body>('POST', path, { plan: s.key('extra') }, { headers });
    expect(second.body.id).toBe(first.body.id);
  });
});

describe('security', () => {
  it('is admin-only, and another environment cannot see the customer', async () => {
    const s = await setup();
    const path = `/v1/customers/${s.customerId}/subscriptions`;
    await expectAdminOnly(app, 'POST', path, { plan: s.key('pro') });
    await expectHiddenFromOtherEnvironment(app, 'POST', path, { plan: s.key('pro') });
    expect((await s.call<{ data: Body[] }>('GET', path)).data).toEqual([]);
  });
});
