/**
 * Stripe-driven subscriptions end to end through the webhook route: signed events, stored by the
 * intake, applied by the event worker (in process, no Redis), and `/v1/check` after each; and a
 * Tessera-led change after a webhook-made subscription updating exactly that subscription's item.
 */
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.ts';
import { type FakeStripe, startFakeStripe } from '../helpers/fake-stripe.ts';
import { createTestApp, type TestApp } from '../helpers/harness.ts';
import { stripeEvent, stripeLifecycle, stripeSubscription } from '../helpers/stripe-events.ts';
import { signature } from '../helpers/stripe-webhook-events.ts';

type Body = Record<string, unknown>;
const WEBHOOK = 'whsec_bGlmZWN5Y2xlLXNpZ25pbmcta2V5LXRlc3Q=';
const SECRET = 'sk_test_51Hfake0123456789abcdefXYZ4242';
const NOW = '2026-12-01T00:00:00.000Z';
const S0 = Date.parse(NOW) / 1000;
const DAY = 86_400;

const PLANS = [
  {
    key: 'basic',
    stripe: { price_ids: ['price_basic'] },
    entitlements: [{ feature: 'reports', enabled: true }],
  },
  {
    key: 'pro',
    stripe: { price_ids: ['price_pro'], lookup_keys: ['pro_monthly'] },
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

async function setUp(app: TestApp): Promise<void> {
  for (const feature of ['reports', 'export', 'extra_seats']) {
    await app.json('POST', '/v1/features', { key: feature, name: feature, type: 'boolean' });
  }
  for (const plan of PLANS) {
    const res = await app.json('POST', '/v1/plans', { name: plan.key, ...plan });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
  }
}

function webhooks(app: TestApp, clock: ManualClock) {
  return async (event: Stripe.Event): Promise<Body> => {
    const body = JSON.stringify(event);
    const header = signature(body, WEBHOOK, Math.floor(clock.now().getTime() / 1000));
    const res = await app.json('POST', '/v1/webhooks/stripe/test', body, {
      key: null,
      headers: { 'stripe-signature': header },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    await app.runtime.stripeEvents.runDue();
    return res.body;
  };
}

async function subscriptionsOf(app: TestApp, customerId: string): Promise<Body[]> {
  const res = await app.json<{ data: Body[] }>('GET', `/v1/customers/${customerId}/subscriptions`);
  expect(res.status).toBe(200);
  return res.body.data;
}

const lifecycle = (n: string) => stripeLifecycle(n, S0, { checkout: true });

describe('a Stripe-driven lifecycle through the webhook route', () => {
  const clock = new ManualClock(NOW);
  let app: TestApp;
  let send: ReturnType<typeof webhooks>;
  beforeAll(async () => {
    app = await createTestApp({ clock });
    send = webhooks(app, clock);
    await setUp(app);
    expect((await app.json('PUT', '/v1/stripe/settings', { webhook_secret: WEBHOOK })).status).toBe(200);
  });
  afterAll(async () => app?.close());

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

  /** What must not depend on the order: everything but the ids. */
  const finalState = async (customerId: string) =>
    (await subscriptionsOf(app, customerId)).map(({ id: _id, customer_id: _c, stripe: _s, ...rest }) => rest);

  it('checkout, upgrade, failed payment with grace, recovery, cancel at period end, deletion', async () => {
    await app.json('PUT', '/v1/customers/c_life', { name: 'Life' });
    const want: Record<string, { status: string; plan: string; reports: boolean; export: boolean }> = {
      created: { status: 'active', plan: 'basic', reports: true, export: false },
      upgraded: { status: 'active', plan: 'pro', reports: true, export: true },
      'payment failed': { status: 'past_due', plan: 'pro', reports: true, export: true },
      'past due': { status: 'past_due', plan: 'pro', reports: true, export: true },
      'invoice paid': { status: 'active', plan: 'pro', reports: true, export: true },
      recovered: { status: 'active', plan: 'pro', reports: true, export: true },
      'cancel at period end': { status: 'active', plan: 'pro', reports: true, export: true },
      deleted: { status: 'canceled', plan: 'pro', reports: false, export: false },
    };
    for (const [label, event] of lifecycle('life')) {
      const receipt = await send(event);
      expect(receipt, label).toMatchObject({ received: true, duplicate: false });
      const stored = await app.json('GET', `/v1/stripe/events/${event.id}`);
      expect(stored.body.status, `${label}: ${stored.body.detail}`).toBe('applied');
      if (label === 'checkout completed') {
        expect((await app.json('GET', '/v1/customers/c_life')).body.stripe_customer_id).toBe('cus_life');
        expect(await allowed('c_life', 'reports')).toBe(false);
        continue;
      }
      const step = want[label]!;
      const subs = await subscriptionsOf(app, 'c_life');
      expect(subs, label).toHaveLength(1);
      expect(subs[0], label).toMatchObject({ status: step.status, plan: step.plan });
      expect(await allowed('c_life', 'reports'), label).toBe(step.reports);
      expect(await allowed('c_life', 'export'), label).toBe(step.export);
      if (label === 'past due') {
        // Within the environment's grace (3 days) access stays; after it, it goes.
        clock.set(new Date((S0 + 4 * DAY) * 1000));
        expect(await allowed('c_life', 'export')).toBe(false);
        clock.set(new Date(NOW));
      }
      if (label === 'cancel at period end') expect(subs[0]?.cancel_at_period_end).toBe(true);
    }
  });

  it('ends in the in-order state when the events arrive in reverse, each twice', async () => {
    // Linked up front: a subscription event for an unknown Stripe customer would create a customer.
    for (const n of ['fwd', 'rev'])
      await app.json('PUT', `/v1/customers/c_${n}`, { stripe_customer_id: `cus_${n}` });
    for (const [, event] of lifecycle('fwd')) await send(event);
    const events = lifecycle('rev').map(([, e]) => e);
    for (const event of [...events].reverse()) {
      expect(await send(event)).toMatchObject({ duplicate: false });
      expect(await send(event)).toMatchObject({ duplicate: true });
    }
    for (const event of events) {
      const stored = await app.json('GET', `/v1/stripe/events/${event.id}`);
      expect(['applied', 'ignored']).toContain(stored.body.status);
    }
    expect(await finalState('c_rev')).toEqual(await finalState('c_fwd'));
    expect(await finalState('c_rev')).toMatchObject([{ status: 'canceled', plan: 'pro' }]);
    expect(await allowed('c_rev', 'reports')).toBe(false);
  });
});

describe('a Tessera-led change after a webhook-made subscription', () => {
  const clock = new ManualClock(NOW);
  let app: TestApp;
  let fake: FakeStripe;
  let send: ReturnType<typeof webhooks>;
  beforeAll(async () => {
    fake = await startFakeStripe();
    app = await createTestApp({ clock, config: { stripeApiBase: fake.url } });
    send = webhooks(app, clock);
    await setUp(app);
    const settings = await app.json('PUT', '/v1/stripe/settings', {
      secret_key: SECRET,
      webhook_secret: WEBHOOK,
      lifecycle_owner: 'tessera',
    });
    expect(settings.status).toBe(200);
  });
  afterAll(async () => {
    await app?.close();
    await fake?.close();
  });

  it('links each Tessera subscription to its own item and pushes a change to exactly that item', async () => {
    await app.json('PUT', '/v1/customers/c_push', { stripe_customer_id: 'cus_push' });
    // The add-on's item comes first: taking "the first item" would change the wrong one.
    const sub = stripeSubscription({
      id: 'sub_push',
      customer: 'cus_push',
      status: 'active',
      items: [
        { id: 'si_push_seats', price: 'price_seats' },
        { id: 'si_push_base', price: 'price_basic' },
      ],
      period: [S0 - DAY, S0 + 29 * DAY],
      startDate: S0 - DAY,
    });
    fake.on('GET /v1/subscriptions/sub_push', () => ({ body: sub }));
    fake.on('POST /v1/subscriptions/sub_push', () => ({ body: sub }));
    const created = stripeEvent('customer.subscription.created', sub, S0 - 600);
    await send(created);
    expect((await app.json('GET', `/v1/stripe/events/${created.id}`)).body.status).toBe('applied');

    const subs = await subscriptionsOf(app, 'c_push');
    const base = subs.find((s) => s.plan === 'basic');
    const addon = subs.find((s) => s.plan === 'seats_pack');
    expect(base?.stripe).toEqual({ subscription_id: 'sub_push', item_id: 'si_push_base' });
    expect(addon?.stripe).toEqual({ subscription_id: 'sub_push', item_id: 'si_push_seats' });

    const changed = await app.json('POST', `/v1/subscriptions/${base?.id}/change`, {
      plan: 'pro',
      timing: 'immediate',
    });
    expect(changed.status, JSON.stringify(changed.body)).toBe(200);
    const pushes = fake.requests.filter((r) => r.path === '/v1/subscriptions/sub_push');
    expect(pushes.map((r) => r.method)).toEqual(['POST']);
    expect(Object.fromEntries(pushes[0]!.form)).toMatchObject({
      'items[0][id]': 'si_push_base',
      'items[0][price]': 'price_pro',
      proration_behavior: 'create_prorations',
    });
  });
});
