/**
 * Points of the HTTP contract (API.md) that answers must follow to the letter: a subscription that
 * starts later is `scheduled` until it starts (by itself), an override that disables a feature says
 * so, usage past a soft limit is `overage_used` (`overage` is the mode), and listed grants show
 * what they have left.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, frozenClock, type TestApp } from '../helpers/harness.ts';
import { DAY, scenario } from '../helpers/scenario.ts';

const START = '2026-03-10T12:00:00.000Z';
let app: TestApp;
beforeAll(async () => {
  app = await createTestApp({ clock: frozenClock(START) });
});
afterAll(async () => app?.close());
beforeEach(() => {
  (app.clock as ReturnType<typeof frozenClock>).set(START);
});

type Body = Record<string, unknown>;

describe('a subscription that starts later', () => {
  const catalog = () =>
    scenario(app)
      .feature('sso', 'boolean')
      .plan('pro', [{ feature: 'sso' }])
      .plan('trialled', [{ feature: 'sso' }], { trial: { days: 7, on_end: 'convert' } })
      .customer('acme');

  it('is scheduled until its start, then active by itself, with the decisions agreeing', async () => {
    const s = await catalog();
    const startsAt = new Date(Date.parse(START) + 3 * DAY).toISOString();
    const created = await s.subscribe('pro', { starts_at: startsAt });
    expect(created).toMatchObject({ status: 'scheduled', started_at: startsAt });
    expect(await s.subscription()).toMatchObject({ status: 'scheduled' });
    const listed = await s.call<{ data: Body[] }>('GET', `/v1/customers/${s.customerId}/subscriptions`);
    expect(listed.data[0]).toMatchObject({ status: 'scheduled' });
    expect(await s.check('sso')).toMatchObject({ allowed: false, reason: 'subscription_inactive' });

    // Its start arrives: the answers change without any job having run.
    s.at(startsAt);
    expect(await s.subscription()).toMatchObject({ status: 'active' });
    expect(await s.check('sso')).toMatchObject({ allowed: true, reason: 'granted' });

    // The scheduler writes the start down once, audited by the system, and bumps the version.
    const before = (await s.check('sso')).version as number;
    await app.runtime.scheduler.runOnce();
    await app.runtime.scheduler.runOnce();
    const row = await app.runtime.deps.db
      .selectFrom('subscriptions')
      .select('status')
      .where('id', '=', s.subscriptionId())
      .executeTakeFirstOrThrow();
    expect(row.status).toBe('active');
    const audit = await s.call<{ data: Body[] }>(
      'GET',
      `/v1/audit-events?action=subscription.started&customer_id=${s.customerId}`,
    );
    expect(audit.data).toHaveLength(1);
    expect(audit.data[0]).toMatchObject({ actor: { type: 'system' }, after: { status: 'active' } });
    expect((await s.check('sso')).version).toBeGreaterThan(before);
  });

  it('starts its trial when it starts, and counts as the one base plan meanwhile', async () => {
    const s = await catalog();
    const startsAt = new Date(Date.parse(START) + DAY).toISOString();
    const created = await s.subscribe('trialled', { starts_at: startsAt });
    expect(created).toMatchObject({ status: 'scheduled' });
    const second = await app.json<Body>('POST', `/v1/customers/${s.customerId}/subscriptions`, {
      plan: s.key('pro'),
    });
    expect(second.status).toBe(409);
    s.at(startsAt);
    expect(await s.subscription()).toMatchObject({ status: 'trialing' });
  });

  it('can be canceled before it starts', async () => {
    const s = await catalog();
    await s.subscribe('pro', { starts_at: new Date(Date.parse(START) + DAY).toISOString() });
    const canceled = await s.command('cancel', { timing: 'immediate' });
    expect(canceled.status).toBe(200);
    expect(canceled.body).toMatchObject({ status: 'canceled' });
  });
});

describe('reasons and numbers in decisions', () => {
  it('an override with enabled: false answers disabled_by_override, in check and listing alike', async () => {
    const s = await scenario(app)
      .feature('sso', 'boolean')
      .plan('pro', [{ feature: 'sso' }])
      .customer('acme')
      .onPlan('pro');
    await s.override('sso', { enabled: false });
    expect(await s.check('sso')).toMatchObject({ allowed: false, reason: 'disabled_by_override' });
    expect(await s.entitlement('sso')).toMatchObject({ has_access: false, enabled: false });
  });

  it('usage past a soft limit is overage_used, and overage is the mode', async () => {
    const s = await scenario(app)
      .feature('calls', 'metered')
      .plan('pro', [{ feature: 'calls', limit: 10, reset: 'month', overage: 'allow' }])
      .customer('acme')
      .onPlan('pro');
    const used = await s.call('POST', '/v1/usage', {
      customer_id: s.customerId,
      feature: s.key('calls'),
      value: 14,
      idempotency_key: 'u1',
    });
    expect(used).toMatchObject({ accepted: true, used: 14 });
    const check = await s.check('calls');
    expect(check).toMatchObject({ allowed: true, used: 14, remaining: 0, overage_used: 4 });
    expect(check).not.toHaveProperty('overage');
    expect(await s.entitlement('calls')).toMatchObject({
      used: 14,
      remaining: 0,
      overage: 'allow',
      overage_used: 4,
    });
  });
});

describe('listed grants', () => {
  it('show their remaining balance after usage burnt some of it', () => grantsRemaining(app));

  it('show the same with the Redis store, which keeps exact balances', async () => {
    const redisApp = await createTestApp({ clock: frozenClock(START), redis: true });
    try {
      await grantsRemaining(redisApp);
    } finally {
      await redisApp.close();
    }
  });
});

/** Three grants, one not yet effective; 18 used against a limit of 10. */
async function grantsRemaining(on: TestApp): Promise<void> {
  const s = await scenario(on)
    .feature('calls', 'metered')
    .plan('pro', [{ feature: 'calls', limit: 10, reset: 'month', overage: 'deny' }])
    .customer('acme')
    .onPlan('pro');
  const first = await s.grant('calls', 5, { priority: 0 });
  const second = await s.grant('calls', 20, { priority: 1 });
  const later = await s.grant('calls', 7, {
    effective_at: new Date(Date.parse(START) + 10 * DAY).toISOString(),
  });
  await s.call('POST', '/v1/usage', {
    customer_id: s.customerId,
    feature: s.key('calls'),
    value: 18,
    idempotency_key: 'u1',
  });
  // 8 past the limit: the first grant pays 5, the second 3.
  const listed = await s.call<{ data: Body[] }>('GET', `/v1/customers/${s.customerId}/grants`);
  const remaining = Object.fromEntries(listed.data.map((g) => [g.id, g.remaining]));
  expect(remaining).toEqual({ [first.id as string]: 0, [second.id as string]: 17, [later.id as string]: 7 });
  expect((await s.check('calls')).remaining).toBe(17);

  // A voided grant has nothing left to pay with.
  await s.call('DELETE', `/v1/grants/${second.id}`);
  const after = await s.call<{ data: Body[] }>('GET', `/v1/customers/${s.customerId}/grants`);
  expect(after.data.find((g) => g.id === second.id)).toMatchObject({ status: 'voided', remaining: 0 });
}

describe('the OpenAPI document', () => {
  it('names scheduled, disabled_by_override, overage_used and remaining', async () => {
    const doc = await app.json<{ components: { schemas: Record<string, Body> } }>('GET', '/openapi.json');
    const text = JSON.stringify(doc.body.components.schemas);
    const schemas = doc.body.components.schemas as Record<string, { properties: Record<string, Body> }>;
    expect(schemas.Subscription!.properties.status!.enum).toContain('scheduled');
    expect(schemas.CheckResult!.properties).toHaveProperty('overage_used');
    expect(schemas.CheckResult!.properties).not.toHaveProperty('overage');
    expect(schemas.CreditGrant!.properties).toHaveProperty('remaining');
    expect(text).toContain('disabled_by_override');
  });
});
