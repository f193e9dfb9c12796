/** Reading subscriptions and commands on them: happy, error and security paths. */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, frozenClock, type TestApp } from '../helpers/harness.ts';
import { DAY, type Scenario, scenario } from '../helpers/scenario.ts';
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

describe('reading and commands', () => {
  it('GET one and a paged list show the state now', async () => {
    const s = await setup();
    await s.subscribe('trialled');
    await s.subscribe('extra');
    const page1 = await s.call<{ data: Body[]; next_cursor: string }>(
      'GET',
      `/v1/customers/${s.customerId}/subscriptions?limit=1`,
    );
    expect(page1.data).toHaveLength(1);
    const page2 = await s.call<{ data: Body[]; next_cursor: null }>(
      'GET',
      `/v1/customers/${s.customerId}/subscriptions?limit=1&cursor=${page1.next_cursor}`,
    );
    expect(page2.next_cursor).toBeNull();
    expect([page1.data[0]?.plan, page2.data[0]?.plan].sort()).toEqual([s.key('extra'), s.key('trialled')]);
    const trialling = [...page1.data, ...page2.data].find((x) => x.plan === s.key('trialled'));
    expect(trialling?.status).toBe('trialing');
    s.advance(15 * DAY);
    expect(await s.subscription('trialled')).toMatchObject({ status: 'active' });
    expect((await s.call('GET', `/v1/customers/ghost/subscriptions`, undefined, [404])).code).toBe(
      'not_found',
    );
    expect((await s.call('GET', '/v1/subscriptions/sub_nope', undefined, [404])).code).toBe('not_found');
  });

  it('maps illegal transitions to 409 naming the state, and kind mismatches to 422', async () => {
    const s = await setup();
    await s.subscribe('trialled');
    await s.subscribe('extra');
    const pause = await s.command('pause', undefined, 'trialled');
    expect(pause.status).toBe(409);
    expect(pause.body).toMatchObject({
      code: 'illegal_transition',
      detail: 'cannot pause a subscription that is trialing',
    });
    const toAddon = await s.command('change', { plan: s.key('extra'), timing: 'immediate' }, 'trialled');
    expect(toAddon.status).toBe(422);
    expect(toAddon.body).toMatchObject({ code: 'plan_kind_mismatch', errors: [{ path: 'plan' }] });
    const toBase = await s.command('change', { plan: s.key('pro'), timing: 'immediate' }, 'extra');
    expect(toBase.status).toBe(422);
    const unknown = await s.command('change', { plan: 'nope', timing: 'immediate' }, 'trialled');
    expect(unknown.body).toMatchObject({ code: 'unknown_plan', errors: [{ path: 'plan' }] });
    await s.command('cancel', { timing: 'immediate' }, 'trialled');
    for (const verb of ['resume', 'convert', 'payment-failed']) {
      const res = await s.command(verb, undefined, 'trialled');
      expect(res.status).toBe(409);
      expect(res.body).toMatchObject({
        code: 'illegal_transition',
        detail: expect.stringContaining('canceled'),
      });
    }
    const seats = await app.json('PATCH', `/v1/subscriptions/${s.subscriptionId('trialled')}`, {
      quantity: 3,
    });
    expect(seats.status).toBe(409);
  });

  it('PATCH quantity changes seats and per-seat limits at once; no-op commands record nothing', async () => {
    const s = await setup();
    await s.subscribe('pro');
    expect((await s.check('seats_calls')).limit).toBe(10);
    const res = await app.json('PATCH', `/v1/subscriptions/${s.subscriptionId()}`, { quantity: 5 });
    expect(res.body).toMatchObject({ quantity: 5 });
    expect((await s.check('seats_calls')).limit).toBe(50);
    const before = await s.call<{ data: Body[] }>('GET', `/v1/audit-events?customer_id=${s.customerId}`);
    expect((await s.command('uncancel')).status).toBe(200);
    await app.json('DELETE', `/v1/subscriptions/${s.subscriptionId()}/scheduled-change`);
    const after = await s.call<{ data: Body[] }>('GET', `/v1/audit-events?customer_id=${s.customerId}`);
    expect(after.data).toHaveLength(before.data.length);
  });

  it('deleting the customer ends its live subscriptions and keeps them as history', async () => {
    const s = await setup();
    await s.subscribe('pro');
    await s.subscribe('extra');
    s.advance(DAY);
    await s.call('DELETE', `/v1/customers/${s.customerId}`);
    for (const plan of ['pro', 'extra']) {
      expect(await s.subscription(plan)).toMatchObject({
        status: 'canceled',
        ended_at: '2026-02-01T10:00:00.000Z',
      });
    }
    const audit = await s.call<{ data: Body[] }>(
      'GET',
      `/v1/audit-events?action=subscription.canceled&customer_id=${s.customerId}`,
    );
    expect(audit.data).toHaveLength(2);
  });
});

describe('security', () => {
  it('every route is admin-only and hides other environments’ subscriptions', async () => {
    const s = await setup();
    await s.subscribe('pro');
    const id = s.subscriptionId();
    const routes: Array<[string, string, Body?]> = [
      ['GET', `/v1/customers/${s.customerId}/subscriptions`],
      ['GET', `/v1/subscriptions/${id}`],
      ['PATCH', `/v1/subscriptions/${id}`, { quantity: 2 }],
      ['POST', `/v1/subscriptions/${id}/change`, { plan: s.key('trialled'), timing: 'period_end' }],
      ['POST', `/v1/subscriptions/${id}/cancel`, { timing: 'period_end' }],
      ['DELETE', `/v1/subscriptions/${id}/scheduled-change`],
      ...['pause', 'resume', 'payment-failed', 'payment-recovered', 'convert', 'uncancel'].map(
        (verb): [string, string] => ['POST', `/v1/subscriptions/${id}/${verb}`],
      ),
      ['POST', `/v1/plans/${s.key('pro')}/migrate`, { from_version: 1, to_version: 1, dry_run: true }],
    ];
    for (const [method, path, body] of routes) {
      await expectAdminOnly(app, method, path, body);
      await expectHiddenFromOtherEnvironment(app, method, path, body);
    }
    expect(await s.subscription()).toMatchObject({ status: 'active', quantity: 1, scheduled_change: null });
  });
});
