/** Stripe's events applied to customers and subscriptions: a lifecycle, duplicates, any order. */
import fc from 'fast-check';
import { sql } from 'kysely';
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyStripeEvent, PermanentStripeError } from '../../src/modules/billing/apply/index.ts';
import type { StripeConnection } from '../../src/modules/billing/settings.ts';
import { systemContext } from '../../src/platform/context.ts';
import { type FakeStripe, startFakeStripe } from '../helpers/fake-stripe.ts';
import { createTestApp, frozenClock, type TestApp } from '../helpers/harness.ts';
import {
  checkoutSession,
  stripeCustomer,
  stripeEvent,
  stripeInvoice,
  stripeLifecycle,
  stripeSubscription,
} from '../helpers/stripe-events.ts';

type Body = Record<string, unknown>;
const NOW = '2026-12-01T00:00:00.000Z';
const clock = frozenClock(NOW);
const S0 = Date.parse(NOW) / 1000;
const DAY = 86_400;
const NO_KEY: StripeConnection = {
  environment: 'test',
  secretKey: null,
  webhookSecret: 'whsec_test',
  lifecycleOwner: 'stripe',
};
let app: TestApp;
let fake: FakeStripe;
let keyed: StripeConnection;

beforeAll(async () => {
  fake = await startFakeStripe();
  app = await createTestApp({ clock, config: { stripeApiBase: fake.url } });
  keyed = { ...NO_KEY, secretKey: 'sk_test_51Hfake0123456789abcdefXYZ4242' };
  for (const feature of ['reports', 'export', 'extra_seats']) {
    await app.json('POST', '/v1/features', { key: feature, name: feature, type: 'boolean' });
  }
  const plans = [
    {
      key: 'basic',
      stripe: { price_ids: ['price_basic'] },
      entitlements: [{ feature: 'reports', enabled: true }],
    },
    {
      key: 'pro',
      stripe: { lookup_keys: ['pro_monthly'] },
      entitlements: [
        { feature: 'reports', enabled: true },
        { feature: 'export', enabled: true },
      ],
    },
    {
      key: 'seats_pack',
      addon: true,
      stripe: { price_ids: ['price_seats'] },
      entitlements: [{ feature: 'extra_seats', enabled: true }],
    },
  ];
  for (const plan of plans) {
    const res = await app.json('POST', '/v1/plans', { name: plan.key, ...plan });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  }
});
afterAll(async () => {
  await app?.close();
  await fake?.close();
});

const ctx = () => systemContext(app.runtime.deps, 'test');
const apply = (event: Stripe.Event, connection = NO_KEY) => applyStripeEvent(ctx(), event, connection);

async function allowed(customerId: string, feature: string): Promise<boolean> {
  const res = await app.json(
    'POST',
    '/v1/check',
    { customer_id: customerId, feature },
    { key: app.checkKey },
  );
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.allowed as boolean;
}

async function subscriptionsOf(customerId: string): Promise<Body[]> {
  const res = await app.json<{ data: Body[] }>('GET', `/v1/customers/${customerId}/subscriptions`);
  expect(res.status).toBe(200);
  return res.body.data;
}

/** What must not depend on the order: everything but the ids (generated, and Stripe's own). */
async function finalState(customerId: string): Promise<Body[]> {
  return (await subscriptionsOf(customerId)).map(({ id: _id, customer_id: _c, stripe: _s, ...rest }) => rest);
}

const lifecycle = (n: string) => stripeLifecycle(n, S0, { paymentSucceeded: true });

async function linkedCustomer(n: string): Promise<string> {
  const res = await app.json('PUT', `/v1/customers/c_${n}`, { stripe_customer_id: `cus_${n}` });
  expect(res.status).toBe(201);
  return `c_${n}`;
}

describe('applying Stripe events', () => {
  it('runs a lifecycle driven only by Stripe events, with /v1/check right at each step', async () => {
    await app.json('PUT', '/v1/customers/acme', { name: 'Acme' });
    const checkout = checkoutSession({
      id: 'cs_1',
      customer: 'cus_life',
      subscription: 'sub_life',
      clientReferenceId: 'acme',
    });
    expect((await apply(stripeEvent('checkout.session.completed', checkout, S0 - 3600))).outcome).toBe(
      'applied',
    );
    expect((await app.json('GET', '/v1/customers/acme')).body.stripe_customer_id).toBe('cus_life');

    const steps = lifecycle('life');
    const expectations: Record<string, { status: string; reports: boolean; export: boolean; plan: string }> =
      {
        created: { status: 'active', reports: true, export: false, plan: 'basic' },
        upgraded: { status: 'active', reports: true, export: true, plan: 'pro' },
        // The invoice alone already tells: payment failed means past_due, paid means recovered.
        'payment failed': { status: 'past_due', reports: true, export: true, plan: 'pro' },
        'past due': { status: 'past_due', reports: true, export: true, plan: 'pro' },
        'invoice paid': { status: 'active', reports: true, export: true, plan: 'pro' },
        recovered: { status: 'active', reports: true, export: true, plan: 'pro' },
        'cancel at period end': { status: 'active', reports: true, export: true, plan: 'pro' },
        deleted: { status: 'canceled', reports: false, export: false, plan: 'pro' },
      };
    for (const [label, event] of steps) {
      const outcome = await apply(event);
      // invoice.payment_succeeded repeats what invoice.paid already said.
      const expectedOutcome = label === 'payment succeeded' ? 'ignored' : 'applied';
      expect(outcome.outcome, `${label}: ${outcome.detail}`).toBe(expectedOutcome);
      const want = expectations[label];
      if (!want) continue;
      const [sub] = await subscriptionsOf('acme');
      expect(sub, label).toMatchObject({ status: want.status, plan: want.plan });
      expect(await allowed('acme', 'reports'), label).toBe(want.reports);
      expect(await allowed('acme', 'export'), label).toBe(want.export);
      if (label === 'past due') {
        // Within the environment's grace (3 days) access stays; after it, it goes.
        clock.set(new Date((S0 + 4 * DAY) * 1000));
        expect(await allowed('acme', 'export')).toBe(false);
        clock.set(NOW);
      }
      if (label === 'cancel at period end') expect(sub?.cancel_at_period_end).toBe(true);
    }
    expect(await subscriptionsOf('acme')).toHaveLength(1);
  });

  it('ignores duplicates and ends in the in-order state when delivered in reverse', async () => {
    const inOrder = await linkedCustomer('fwd');
    for (const [, event] of lifecycle('fwd')) await apply(event);
    const reversed = await linkedCustomer('rev');
    const events = lifecycle('rev').map(([, e]) => e);
    for (const event of [...events].reverse()) await apply(event);
    for (const event of events) {
      const again = await apply(event);
      expect(again.outcome, again.detail).toBe('ignored');
    }
    expect(await finalState(reversed)).toEqual(await finalState(inOrder));
    expect(await finalState(reversed)).toMatchObject([{ status: 'canceled', plan: 'pro' }]);
  });

  it('reaches the in-order state from any shuffle of a lifecycle prefix, with duplicates', async () => {
    const expected = new Map<number, Body[]>();
    const full = lifecycle('ref').length;
    for (let length = 1; length <= full; length++) {
      const id = `ref${length}`;
      const customer = await linkedCustomer(id);
      for (const [, event] of lifecycle(id).slice(0, length)) await apply(event);
      expected.set(length, await finalState(customer));
    }
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc
          .integer({ min: 1, max: full })
          .chain((length) =>
            fc.tuple(
              fc.constant(length),
              fc.shuffledSubarray([...Array(length).keys()], { minLength: length, maxLength: length }),
              fc.array(fc.nat(length - 1), { maxLength: 3 }),
            ),
          ),
        async ([length, order, duplicates]) => {
          const id = `shuf${++run}`;
          const customer = await linkedCustomer(id);
          const events = lifecycle(id)
            .slice(0, length)
            .map(([, e]) => e);
          const delivered = [...order, ...duplicates].map((i) => events[i] as Stripe.Event);
          for (const event of delivered) await apply(event);
          expect(await finalState(customer)).toEqual(expected.get(length));
        },
      ),
      { numRuns: 40 },
    );
  });

  it('matches Stripe customers by link, by metadata, or creates them', async () => {
    await app.json('PUT', '/v1/customers/linked', { stripe_customer_id: 'cus_M1' });
    await app.json('PUT', '/v1/customers/beta', { name: 'Beta' });
    const created = (id: string, metadata: Record<string, string> = {}) =>
      apply(
        stripeEvent(
          'customer.created',
          stripeCustomer({ id, email: `${id}@example.test`, metadata }),
          S0 - 60,
        ),
      );
    expect((await created('cus_M1')).detail).toContain('linked');
    expect((await created('cus_M2', { tessera_customer_id: 'beta' })).detail).toContain('beta');
    expect((await app.json('GET', '/v1/customers/beta')).body.stripe_customer_id).toBe('cus_M2');
    expect((await created('cus_M3')).detail).toContain('cus_M3');
    const made = await app.json('GET', '/v1/customers/cus_M3');
    expect(made.body).toMatchObject({
      customer_id: 'cus_M3',
      stripe_customer_id: 'cus_M3',
      email: 'cus_M3@example.test',
    });
    await app.json('PUT', '/v1/customers/gamma', { name: 'Gamma' });
    const viaSubscription = stripeSubscription({
      id: 'sub_M4',
      customer: 'cus_M4',
      status: 'active',
      items: [{ id: 'si_M4', price: 'price_basic' }],
      period: [S0 - DAY, S0 + 29 * DAY],
      startDate: S0 - DAY,
      metadata: { tessera_customer_id: 'gamma' },
    });
    await apply(stripeEvent('customer.subscription.created', viaSubscription, S0 - 50));
    expect((await app.json('GET', '/v1/customers/gamma')).body.stripe_customer_id).toBe('cus_M4');
    expect(await finalState('gamma')).toMatchObject([{ plan: 'basic', status: 'active' }]);
    const linked = await app.json<{ data: Body[] }>('GET', '/v1/customers?stripe_customer_id=cus_M1');
    expect(linked.body.data.map((c) => c.customer_id)).toEqual(['linked']);
  });

  it('keeps one Tessera subscription per item: the base plan and each add-on', async () => {
    const customer = await linkedCustomer('items');
    const event = stripeEvent(
      'customer.subscription.created',
      stripeSubscription({
        id: 'sub_items',
        customer: 'cus_items',
        status: 'trialing',
        trialEnd: S0 + 7 * DAY,
        items: [
          { id: 'si_base', price: 'price_basic' },
          { id: 'si_seats', price: 'price_seats', quantity: 5 },
        ],
        period: [S0 - DAY, S0 + 7 * DAY],
        startDate: S0 - DAY,
      }),
      S0 - 60,
    );
    expect((await apply(event)).outcome).toBe('applied');
    const subs = await finalState(customer);
    expect(subs).toHaveLength(2);
    expect(subs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ plan: 'basic', status: 'trialing', addon: false }),
        expect.objectContaining({ plan: 'seats_pack', addon: true, quantity: 5 }),
      ]),
    );
    expect(await allowed(customer, 'extra_seats')).toBe(true);
  });

  it('takes over a base plan made in Tessera, and holds a second Stripe base plan until the first ends', async () => {
    const customer = await linkedCustomer('adopt');
    const made = await app.json('POST', `/v1/customers/${customer}/subscriptions`, { plan: 'basic' });
    expect(made.status).toBe(201);
    const sub = (id: string, status: Stripe.Subscription.Status, created: number) =>
      stripeEvent(
        status === 'canceled' ? 'customer.subscription.deleted' : 'customer.subscription.created',
        stripeSubscription({
          id,
          customer: 'cus_adopt',
          status,
          items: [{ id: `si_${id}`, price: 'price_pro', lookupKey: 'pro_monthly' }],
          period: [S0 - DAY, S0 + 29 * DAY],
          startDate: S0 - DAY,
          ...(status === 'canceled' ? { canceledAt: created, endedAt: created } : {}),
        }),
        created,
      );
    expect((await apply(sub('sub_adopt1', 'active', S0 - 300))).outcome).toBe('applied');
    expect(await subscriptionsOf(customer)).toMatchObject([
      { id: made.body.id, plan: 'pro', status: 'active' },
    ]);
    // A second Stripe subscription's base plan is retried until the first one's cancellation arrives.
    await expect(apply(sub('sub_adopt2', 'active', S0 - 200))).rejects.toThrow(/waits for it to end/);
    expect((await apply(sub('sub_adopt1', 'canceled', S0 - 250))).outcome).toBe('applied');
    expect((await apply(sub('sub_adopt2', 'active', S0 - 200))).outcome).toBe('applied');
    const states = await finalState(customer);
    expect(states.map((s) => s.status).sort()).toEqual(['active', 'canceled']);
  });

  it('records and reports a subscription with an unmapped price', async () => {
    const customer = await linkedCustomer('unmapped');
    const event = stripeEvent(
      'customer.subscription.created',
      stripeSubscription({
        id: 'sub_unmapped',
        customer: 'cus_unmapped',
        status: 'active',
        items: [{ id: 'si_unmapped', price: 'price_nobody_sells' }],
        period: [S0 - DAY, S0 + 29 * DAY],
        startDate: S0 - DAY,
      }),
      S0 - 60,
    );
    const outcome = await apply(event);
    expect(outcome.outcome).toBe('ignored');
    expect(outcome.detail).toContain('price_nobody_sells');
    // A later state of the same subscription still says so, without reporting the item again.
    const later = stripeEvent(
      'customer.subscription.updated',
      { ...event.data.object, cancel_at_period_end: true },
      S0 - 30,
    );
    expect((await apply(later)).detail).toContain('price_nobody_sells');
    const db = app.runtime.deps.db;
    const audit = await sql<{ n: string }>`SELECT count(*) AS n FROM audit_events
      WHERE action = 'stripe.price_unmapped' AND customer_id = ${customer}`.execute(db);
    expect(Number(audit.rows[0]?.n)).toBe(1);
    const outbox = await sql<{ n: string }>`SELECT count(*) AS n FROM outbox
      WHERE topic = 'stripe.price_unmapped' AND customer_id = ${customer}`.execute(db);
    expect(Number(outbox.rows[0]?.n)).toBe(1);
    expect(await subscriptionsOf(customer)).toEqual([]);
  });

  it('re-fetches the subscription from Stripe for invoice events and ties when a key is set', async () => {
    const customer = await linkedCustomer('fetch');
    const period: [number, number] = [S0 - DAY, S0 + 29 * DAY];
    const current = stripeSubscription({
      id: 'sub_fetch',
      customer: 'cus_fetch',
      status: 'active',
      items: [{ id: 'si_fetch', price: 'price_pro', lookupKey: 'pro_monthly' }],
      period,
      startDate: period[0],
    });
    fake.on('GET /v1/subscriptions/sub_fetch', () => ({ body: current }));
    const paid = stripeInvoice({
      id: 'in_fetch',
      customer: 'cus_fetch',
      subscription: 'sub_fetch',
      status: 'paid',
      created: S0 - 100,
      paidAt: S0 - 90,
    });
    expect((await apply(stripeEvent('invoice.paid', paid, S0 - 90), keyed)).outcome).toBe('applied');
    expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toContain('GET /v1/subscriptions/sub_fetch');
    expect(await finalState(customer)).toMatchObject([{ plan: 'pro', status: 'active' }]);

    // Two states in the same second: Stripe's current one decides, whichever arrives last.
    const stale = stripeSubscription({
      ...{ id: 'sub_fetch', customer: 'cus_fetch', status: 'past_due' },
      items: [{ id: 'si_fetch', price: 'price_basic' }],
      period,
      startDate: period[0],
    });
    const fetchesBefore = fake.requests.length;
    await apply(stripeEvent('customer.subscription.updated', stale, S0 - 90), keyed);
    expect(fake.requests.length).toBe(fetchesBefore + 1);
    expect(await finalState(customer)).toMatchObject([{ plan: 'pro', status: 'active' }]);

    // Checkout names the subscription by id: with a key it is fetched and applied at once.
    await app.json('PUT', '/v1/customers/delta', { name: 'Delta' });
    fake.on('GET /v1/subscriptions/sub_checkout', () => ({
      body: stripeSubscription({
        id: 'sub_checkout',
        customer: 'cus_checkout',
        status: 'trialing',
        trialEnd: S0 + 14 * DAY,
        items: [{ id: 'si_checkout', price: 'price_basic' }],
        period: [S0 - 60, S0 + 14 * DAY],
        startDate: S0 - 60,
      }),
    }));
    const session = checkoutSession({
      id: 'cs_key',
      customer: 'cus_checkout',
      subscription: 'sub_checkout',
      clientReferenceId: 'delta',
    });
    expect((await apply(stripeEvent('checkout.session.completed', session, S0 - 50), keyed)).outcome).toBe(
      'applied',
    );
    expect(await finalState('delta')).toMatchObject([{ plan: 'basic', status: 'trialing' }]);
    expect(await allowed('delta', 'reports')).toBe(true);

    // A subscription Stripe does not know can never apply: permanent, not retried.
    const orphan = stripeInvoice({
      id: 'in_orphan',
      customer: 'cus_fetch',
      subscription: 'sub_gone',
      status: 'paid',
      created: S0 - 80,
      paidAt: S0 - 80,
    });
    await expect(apply(stripeEvent('invoice.paid', orphan, S0 - 80), keyed)).rejects.toBeInstanceOf(
      PermanentStripeError,
    );
  });
});
