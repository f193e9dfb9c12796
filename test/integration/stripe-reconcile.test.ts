/** Reconciliation: Stripe's subscriptions and customers compared with Tessera's, drift repaired and reported. */
import { sql } from 'kysely';
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { applyStripeEvent } from '../../src/modules/billing/apply/index.ts';
import { runStripeCommand } from '../../src/modules/billing/cli.ts';
import type { StripeConnection } from '../../src/modules/billing/settings.ts';
import { systemContext } from '../../src/platform/context.ts';
import { StripeReconcileJob } from '../../src/workers/stripe-reconcile.ts';
import { type FakeStripe, startFakeStripe } from '../helpers/fake-stripe.ts';
import { createTestApp, frozenClock, type TestApp } from '../helpers/harness.ts';
import { stripeCustomer, stripeEvent, stripeSubscription } from '../helpers/stripe-events.ts';

type Body = Record<string, unknown>;
const NOW = '2026-12-01T00:00:00.000Z';
const clock = frozenClock(NOW);
const S0 = Date.parse(NOW) / 1000;
const DAY = 86_400;
const SECRET = 'sk_test_51Hfake0123456789abcdefXYZ4242';
const NO_KEY: StripeConnection = {
  environment: 'test',
  secretKey: null,
  webhookSecret: 'whsec_test',
  lifecycleOwner: 'stripe',
};
let app: TestApp;
let fake: FakeStripe;

/** What Stripe lists now; the fake answers its list endpoints two at a time, as Stripe pages. */
let stripeSubscriptions: Stripe.Subscription[] = [];
let stripeCustomers: Stripe.Customer[] = [];

function serveList<T extends { id: string }>(path: string, objects: () => T[]): void {
  fake.on(`GET ${path}`, (r) => {
    const all = objects();
    const after = r.query.get('starting_after');
    const from = after ? all.findIndex((o) => o.id === after) + 1 : 0;
    const data = all.slice(from, from + 2);
    return { body: { object: 'list', url: path, has_more: from + 2 < all.length, data } };
  });
}

const sub = (n: string, over: Partial<Parameters<typeof stripeSubscription>[0]> = {}) =>
  stripeSubscription({
    id: `sub_${n}`,
    customer: `cus_${n}`,
    status: 'active',
    items: [{ id: `si_${n}`, price: 'price_basic' }],
    period: [S0 - DAY, S0 + 29 * DAY],
    startDate: S0 - DAY,
    ...over,
  });

beforeAll(async () => {
  fake = await startFakeStripe();
  serveList('/v1/subscriptions', () => stripeSubscriptions);
  serveList('/v1/customers', () => stripeCustomers);
  app = await createTestApp({ clock, config: { stripeApiBase: fake.url } });
  await app.json('POST', '/v1/features', { key: 'reports', name: 'Reports', type: 'boolean' });
  const plan = await app.json('POST', '/v1/plans', {
    key: 'basic',
    name: 'Basic',
    stripe: { price_ids: ['price_basic'] },
    entitlements: [{ feature: 'reports', enabled: true }],
  });
  expect(plan.status).toBe(201);
  const settings = await app.json('PUT', '/v1/stripe/settings', {
    secret_key: SECRET,
    webhook_secret: 'whsec_test0123456789',
  });
  expect(settings.status).toBe(200);
});
afterAll(async () => {
  await app?.close();
  await fake?.close();
});

async function allowed(customerId: string): Promise<boolean> {
  const res = await app.json(
    'POST',
    '/v1/check',
    { customer_id: customerId, feature: 'reports' },
    { key: app.checkKey },
  );
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.allowed as boolean;
}

async function subscriptionsOf(customerId: string): Promise<Body[]> {
  return (await app.json<{ data: Body[] }>('GET', `/v1/customers/${customerId}/subscriptions`)).body.data;
}

async function driftAudits(): Promise<number> {
  const rows = await sql<{ n: number }>`SELECT count(*)::int AS n FROM audit_events
    WHERE environment = 'test' AND action = 'stripe.drift_repaired'`.execute(app.runtime.deps.db);
  return rows.rows[0]?.n ?? 0;
}

const brief = (items: Body[]) =>
  items
    .map((i) => `${i.stripe_subscription_id ?? i.customer_id}:${i.field}:${i.action}`)
    .sort()
    .join(' ');

describe('Stripe reconciliation', () => {
  it('repairs a planted drift both ways, reports it, and a dry run changes nothing', async () => {
    for (const n of ['a', 'b', 'c', 'd']) {
      expect((await app.json('PUT', `/v1/customers/c_${n}`, { stripe_customer_id: `cus_${n}` })).status).toBe(
        201,
      );
      const created = stripeEvent('customer.subscription.created', sub(n), S0 - 3600);
      const outcome = await applyStripeEvent(systemContext(app.runtime.deps, 'test'), created, NO_KEY);
      expect(outcome.outcome, outcome.detail).toBe('applied');
    }
    await app.json('PUT', '/v1/customers/c_e', { name: 'Named in Stripe metadata' });
    // b: ended in Tessera while Stripe still bills it.
    const [b] = await subscriptionsOf('c_b');
    expect(
      (await app.json('POST', `/v1/subscriptions/${b?.id}/cancel`, { timing: 'immediate' })).status,
    ).toBe(200);
    // a: canceled in Stripe, its event lost; c: gone from Stripe (404); d: in step.
    stripeSubscriptions = [
      sub('a', { status: 'canceled', canceledAt: S0 - 600, endedAt: S0 - 600 }),
      sub('b'),
      sub('d'),
      // Ended before Tessera knew of it: nothing to repair, no customer made.
      sub('old', { status: 'canceled', canceledAt: S0 - 90 * DAY, endedAt: S0 - 90 * DAY }),
    ];
    stripeCustomers = ['a', 'b', 'd'].map((n) => stripeCustomer({ id: `cus_${n}` }));
    stripeCustomers.push(stripeCustomer({ id: 'cus_e', metadata: { tessera_customer_id: 'c_e' } }));
    const before = { a: await allowed('c_a'), b: await allowed('c_b'), c: await allowed('c_c') };
    expect(before).toEqual({ a: true, b: false, c: true });

    clock.advance(60_000);
    const dry = await app.json<Body & { report: { items: Body[]; counts: Body } }>(
      'POST',
      '/v1/stripe/reconciliations',
      { dry_run: true },
    );
    expect(dry.status, JSON.stringify(dry.body)).toBe(201);
    expect(dry.body).toMatchObject({ status: 'succeeded', dry_run: true, error: null });
    expect(brief(dry.body.report.items)).toBe(
      'c_e:stripe_customer_id:would_repair sub_a:status:would_repair sub_b:subscription:would_repair sub_c:status:would_repair',
    );
    expect(dry.body.report.counts).toMatchObject({
      stripe_subscriptions: 4,
      stripe_customers: 4,
      would_repair: 4,
    });
    expect({ a: await allowed('c_a'), b: await allowed('c_b'), c: await allowed('c_c') }).toEqual(before);
    expect((await app.json('GET', '/v1/customers/c_e')).body.stripe_customer_id).toBeNull();
    expect(await driftAudits()).toBe(0);

    clock.advance(60_000);
    const run = await app.json<Body & { report: { items: Body[]; counts: Body } }>(
      'POST',
      '/v1/stripe/reconciliations',
      {},
    );
    expect(run.status, JSON.stringify(run.body)).toBe(201);
    expect(run.body).toMatchObject({ status: 'succeeded', dry_run: false });
    const items = run.body.report.items;
    expect(brief(items)).toBe(
      'c_e:stripe_customer_id:repaired sub_a:status:repaired sub_b:subscription:repaired sub_c:status:repaired',
    );
    expect(items.find((i) => i.stripe_subscription_id === 'sub_a')).toMatchObject({
      customer_id: 'c_a',
      tessera: 'active',
      stripe: 'canceled',
    });
    expect(items.find((i) => i.stripe_subscription_id === 'sub_b')).toMatchObject({
      customer_id: 'c_b',
      tessera: null,
      stripe: { plan: 'basic', status: 'active' },
    });
    expect({ a: await allowed('c_a'), b: await allowed('c_b'), c: await allowed('c_c') }).toEqual({
      a: false,
      b: true,
      c: false,
    });
    expect((await app.json('GET', '/v1/customers/c_e')).body.stripe_customer_id).toBe('cus_e');
    expect(await driftAudits()).toBe(4);
    expect((await app.json('GET', '/v1/customers/cus_old')).status).toBe(404);

    const shown = await app.json('GET', `/v1/stripe/reconciliations/${run.body.id}`);
    expect(shown.status).toBe(200);
    expect(shown.body).toEqual(run.body);
    const list = await app.json<{ data: Body[]; next_cursor: string | null }>(
      'GET',
      '/v1/stripe/reconciliations?limit=1',
    );
    expect(list.body.data.map((r) => r.id)).toEqual([run.body.id]);
    const next = await app.json<{ data: Body[] }>(
      'GET',
      `/v1/stripe/reconciliations?limit=1&cursor=${list.body.next_cursor}`,
    );
    expect(next.body.data.map((r) => r.id)).toEqual([dry.body.id]);

    // In step now: another run finds nothing, and a late event from before cannot undo the repair.
    clock.advance(60_000);
    const again = await app.json<{ report: { items: Body[] } }>('POST', '/v1/stripe/reconciliations', {});
    expect(again.body.report.items).toEqual([]);
    const late = stripeEvent('customer.subscription.updated', sub('b', { status: 'past_due' }), S0 - 60);
    const lateOutcome = await applyStripeEvent(systemContext(app.runtime.deps, 'test'), late, NO_KEY);
    expect(lateOutcome).toMatchObject({ outcome: 'ignored', detail: expect.stringContaining('stale') });
    expect(await allowed('c_b')).toBe(true);

    // An event made after a run began listing is not overwritten by the (maybe older) listing.
    const during = stripeEvent(
      'customer.subscription.updated',
      sub('d', { items: [{ id: 'si_d', price: 'price_basic', quantity: 5 }] }),
      Math.floor(clock.now().getTime() / 1000) + 30,
    );
    expect((await applyStripeEvent(systemContext(app.runtime.deps, 'test'), during, NO_KEY)).outcome).toBe(
      'applied',
    );
    const racing = await app.json<{ report: { items: Body[] } }>('POST', '/v1/stripe/reconciliations', {});
    expect(racing.body.report.items).toEqual([]);
    expect((await subscriptionsOf('c_d'))[0]).toMatchObject({ quantity: 5, status: 'active' });
  });

  it('records a run that Stripe fails as failed and answers 502; no key answers 422; admin only', async () => {
    fake.on('GET /v1/subscriptions', () => ({
      status: 400,
      body: { error: { type: 'invalid_request_error', message: 'boom' } },
    }));
    clock.advance(60_000);
    const failed = await app.json('POST', '/v1/stripe/reconciliations', {});
    expect(failed.status).toBe(502);
    expect(failed.body.code).toBe('stripe_error');
    const list = await app.json<{ data: Body[] }>('GET', '/v1/stripe/reconciliations?limit=1');
    expect(list.body.data[0]).toMatchObject({ status: 'failed', error: 'boom' });
    serveList('/v1/subscriptions', () => stripeSubscriptions);

    const live = await app.json('POST', '/v1/stripe/reconciliations', {}, { key: app.liveAdminKey });
    expect(live.status).toBe(422);
    expect(live.body.code).toBe('stripe_not_configured');
    expect((await app.json('POST', '/v1/stripe/reconciliations', {}, { key: app.checkKey })).status).toBe(
      403,
    );
    expect((await app.json('GET', '/v1/stripe/reconciliations/rec_nope')).status).toBe(404);
    const bad = await app.json('POST', '/v1/stripe/reconciliations', { dry_run: 'yes' });
    expect(bad.status).toBe(400);
    expect(bad.body.errors).toEqual([expect.objectContaining({ path: 'dry_run' })]);
  });

  it('runs from the CLI and from the scheduled job', async () => {
    let out = '';
    const code = await runStripeCommand(
      app.runtime,
      ['reconcile', '--env', 'test', '--dry-run'],
      (t) => {
        out += t;
      },
      (t) => {
        out += t;
      },
    );
    expect(code, out).toBe(0);
    expect(JSON.parse(out)).toMatchObject({ status: 'succeeded', dry_run: true });
    expect(
      await runStripeCommand(
        app.runtime,
        ['reconcile', '--env', 'live'],
        () => {},
        () => {},
      ),
    ).toBe(1);
    expect(
      await runStripeCommand(
        app.runtime,
        ['reconcile'],
        () => {},
        () => {},
      ),
    ).toBe(2);

    const runs = await new StripeReconcileJob(app.runtime.deps).runOnce();
    expect(runs.map((r) => [r.status, r.dry_run])).toEqual([['succeeded', false]]);
    expect(loadConfig({}).stripeReconcileHours).toBe(24);
    expect(loadConfig({ STRIPE_RECONCILE_HOURS: '0' }).stripeReconcileHours).toBe(0);
  });
});
