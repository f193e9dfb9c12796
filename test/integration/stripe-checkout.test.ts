/** Checkout, and pushing Tessera-led subscription changes to Stripe, against a local Stripe server. */
import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type FakeStripe, startFakeStripe } from '../helpers/fake-stripe.ts';
import { createTestApp, type TestApp } from '../helpers/harness.ts';
import { type Scenario, scenario } from '../helpers/scenario.ts';

let app: TestApp;
let stripe: FakeStripe;
const SECRET = 'sk_test_51Hfake0123456789abcdefXYZ4242';
const WEBHOOK = 'whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw==';
type Body = Record<string, unknown>;

beforeAll(async () => {
  stripe = await startFakeStripe();
  app = await createTestApp({ config: { stripeApiBase: stripe.url } });
});
afterAll(async () => {
  await app?.close();
  await stripe?.close();
});

let customersCreated = 0;
beforeEach(() => {
  stripe.requests.length = 0;
  customersCreated = 0;
  stripe.on('POST /v1/customers', (r) => {
    customersCreated += 1;
    return {
      body: {
        id: `cus_${r.form.get('metadata[tessera_customer_id]')}`,
        object: 'customer',
        metadata: { tessera_customer_id: r.form.get('metadata[tessera_customer_id]') },
      },
    };
  });
  stripe.on('POST /v1/checkout/sessions', () => ({
    body: {
      id: 'cs_test_a1',
      object: 'checkout.session',
      mode: 'subscription',
      url: 'https://checkout.stripe.com/c/pay/cs_test_a1',
    },
  }));
  stripe.on('GET /v1/prices', (r) => ({
    body: {
      object: 'list',
      url: '/v1/prices',
      has_more: false,
      data:
        r.query.get('lookup_keys[0]') === 'pro_monthly'
          ? [{ id: 'price_pro_lk', object: 'price', lookup_key: 'pro_monthly' }]
          : [],
    },
  }));
});

async function connect(owner: 'stripe' | 'tessera'): Promise<void> {
  const res = await app.json('PUT', '/v1/stripe/settings', {
    secret_key: SECRET,
    webhook_secret: WEBHOOK,
    lifecycle_owner: owner,
  });
  expect(res.status).toBe(200);
}

async function setup(): Promise<Scenario> {
  const s = await scenario(app).feature('sso', 'boolean').customer('acme');
  await s.call('POST', '/v1/plans', {
    key: s.key('basic'),
    name: 'Basic',
    entitlements: [],
    stripe: { price_ids: ['price_basic'] },
  });
  await s.call('POST', '/v1/plans', {
    key: s.key('pro'),
    name: 'Pro',
    entitlements: [{ feature: s.key('sso') }],
    stripe: { lookup_keys: ['pro_monthly'] },
  });
  await s.call('POST', '/v1/plans', { key: s.key('bare'), name: 'Bare', entitlements: [] });
  return s;
}

const checkout = (s: Scenario, body: Body) =>
  app.json<Body>('POST', `/v1/customers/${s.customerId}/checkout`, {
    success_url: 'https://app.example.com/done',
    cancel_url: 'http://127.0.0.1:3000/billing',
    ...body,
  });

describe('checkout', () => {
  it('answers 422 stripe_not_configured before Stripe is connected', async () => {
    const s = await setup();
    const res = await checkout(s, { plan: s.key('basic') });
    expect(res.status).toBe(422);
    expect(res.body.code).toBe('stripe_not_configured');
    expect(stripe.requests).toHaveLength(0);
  });

  it('creates a subscription-mode session for the plan’s price, creating and linking the customer once', async () => {
    await connect('stripe');
    const s = await setup();
    const res = await checkout(s, { plan: s.key('pro'), quantity: 3 });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      url: 'https://checkout.stripe.com/c/pay/cs_test_a1',
      session_id: 'cs_test_a1',
    });

    const created = stripe.requests.find((r) => r.path === '/v1/customers')!;
    expect(created.form.get('metadata[tessera_customer_id]')).toBe(s.customerId);
    expect(created.headers['idempotency-key']).toBe(`tessera:customer:test:${s.customerId}`);
    const session = stripe.requests.find((r) => r.path === '/v1/checkout/sessions')!;
    expect(Object.fromEntries(session.form)).toMatchObject({
      mode: 'subscription',
      customer: `cus_${s.customerId}`,
      'line_items[0][price]': 'price_pro_lk',
      'line_items[0][quantity]': '3',
      success_url: 'https://app.example.com/done',
      cancel_url: 'http://127.0.0.1:3000/billing',
      client_reference_id: s.customerId,
      'metadata[tessera_customer_id]': s.customerId,
      'subscription_data[metadata][tessera_customer_id]': s.customerId,
    });
    const customer = await s.call('GET', `/v1/customers/${s.customerId}`);
    expect(customer.stripe_customer_id).toBe(`cus_${s.customerId}`);
    const audits = await sql<{ n: number }>`SELECT count(*)::int AS n FROM audit_events
      WHERE action = 'customer.stripe_linked' AND target->>'id' = ${s.customerId}`.execute(
      app.runtime.deps.db,
    );
    expect(audits.rows[0]?.n).toBe(1);

    const again = await checkout(s, { plan: s.key('basic') });
    expect(again.status).toBe(200);
    expect(customersCreated).toBe(1);
    expect(stripe.requests.at(-1)?.form.get('line_items[0][price]')).toBe('price_basic');
    expect(stripe.requests.at(-1)?.form.get('line_items[0][quantity]')).toBe('1');
  });

  it('refuses a plan without a Stripe price, bad URLs, unknown customers and check keys', async () => {
    await connect('stripe');
    const s = await setup();
    const bare = await checkout(s, { plan: s.key('bare') });
    expect(bare.status).toBe(422);
    expect(bare.body).toMatchObject({ code: 'plan_not_mapped', errors: [{ path: 'plan' }] });
    const badUrl = await checkout(s, { plan: s.key('basic'), success_url: 'http://example.com/x' });
    expect(badUrl.status).toBe(400);
    expect((badUrl.body.errors as { path: string }[]).map((e) => e.path)).toContain('success_url');
    const ghost = await app.json('POST', '/v1/customers/ghost/checkout', {
      plan: s.key('basic'),
      success_url: 'https://a.example/ok',
      cancel_url: 'https://a.example/no',
    });
    expect(ghost.status).toBe(404);
    const check = await app.json(
      'POST',
      `/v1/customers/${s.customerId}/checkout`,
      { plan: s.key('basic'), success_url: 'https://a.example/ok', cancel_url: 'https://a.example/no' },
      { key: app.checkKey },
    );
    expect(check.status).toBe(403);
    expect(stripe.requests.filter((r) => r.method === 'POST')).toHaveLength(0);
  });

  it('answers 502 with Stripe’s message when Stripe refuses the session', async () => {
    await connect('stripe');
    const s = await setup();
    stripe.on('POST /v1/checkout/sessions', () => ({
      status: 400,
      body: { error: { type: 'invalid_request_error', message: 'No such price: price_basic' } },
    }));
    const res = await checkout(s, { plan: s.key('basic') });
    expect(res.status).toBe(502);
    expect(res.body).toMatchObject({ code: 'stripe_error', detail: 'No such price: price_basic' });
    expect(res.body.request_id).toBeTruthy();
  });
});

describe('Tessera-led changes are pushed to Stripe', () => {
  async function linkedSubscription(s: Scenario): Promise<string> {
    const sub = await s.subscribe('basic');
    await app.runtime.deps.db
      .updateTable('subscriptions')
      .set({ stripe_subscription_id: `sub_stripe_${s.suffix}`, stripe_item_id: `si_${s.suffix}` })
      .where('id', '=', sub.id as string)
      .execute();
    return sub.id as string;
  }

  const trail = async (customerId: string) => {
    const db = app.runtime.deps.db;
    const audit = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM audit_events WHERE environment = 'test'`.execute(db);
    const outbox = await sql<{
      n: number;
    }>`SELECT count(*)::int AS n FROM outbox WHERE environment = 'test'`.execute(db);
    const customer = await db
      .selectFrom('customers')
      .select('version')
      .where('customer_id', '=', customerId)
      .executeTakeFirstOrThrow();
    return { audit: audit.rows[0]?.n, outbox: outbox.rows[0]?.n, version: customer.version };
  };

  it('an upgrade updates the Stripe subscription item’s price, with an idempotency key, before answering', async () => {
    await connect('tessera');
    const s = await setup();
    const id = await linkedSubscription(s);
    stripe.on(`POST /v1/subscriptions/sub_stripe_${s.suffix}`, () => ({
      body: { id: `sub_stripe_${s.suffix}`, object: 'subscription', status: 'active' },
    }));
    const res = await app.json<Body>(
      'POST',
      `/v1/subscriptions/${id}/change`,
      { plan: s.key('pro'), timing: 'immediate' },
      { headers: { 'idempotency-key': 'upgrade-1' } },
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      plan: s.key('pro'),
      stripe: { subscription_id: `sub_stripe_${s.suffix}`, item_id: `si_${s.suffix}` },
    });
    const update = stripe.requests.find((r) => r.path === `/v1/subscriptions/sub_stripe_${s.suffix}`)!;
    expect(Object.fromEntries(update.form)).toEqual({
      'items[0][id]': `si_${s.suffix}`,
      'items[0][price]': 'price_pro_lk',
      proration_behavior: 'create_prorations',
    });
    expect(update.headers['idempotency-key']).toMatch(
      new RegExp(`^tessera:${id}:subscription.changed:[0-9a-f]{32}$`),
    );

    stripe.on(`DELETE /v1/subscriptions/sub_stripe_${s.suffix}`, () => ({
      body: { id: `sub_stripe_${s.suffix}`, object: 'subscription', status: 'canceled' },
    }));
    const scheduled = await s.command('cancel', { timing: 'period_end' });
    expect(scheduled.status).toBe(200);
    expect(stripe.requests.at(-1)?.form.get('cancel_at_period_end')).toBe('true');
    const canceled = await s.command('cancel', { timing: 'immediate' });
    expect(canceled.status).toBe(200);
    expect(stripe.requests.at(-1)?.method).toBe('DELETE');
    expect(stripe.requests.at(-1)?.headers['idempotency-key']).toMatch(/subscription\.canceled/);
  });

  for (const status of [402, 400]) {
    it(`a Stripe ${status} answers 502 and changes nothing in Tessera`, async () => {
      await connect('tessera');
      const s = await setup();
      await linkedSubscription(s);
      stripe.on(`POST /v1/subscriptions/sub_stripe_${s.suffix}`, () => ({
        status,
        body: {
          error: {
            type: status === 402 ? 'card_error' : 'invalid_request_error',
            code: status === 402 ? 'card_declined' : 'resource_missing',
            message: status === 402 ? 'Your card was declined.' : 'No such price',
          },
        },
      }));
      const before = await s.subscription('basic');
      const trailBefore = await trail(s.customerId);
      const res = await s.command('change', { plan: s.key('pro'), timing: 'immediate' });
      expect(res.status).toBe(502);
      expect(res.body).toMatchObject({
        code: 'stripe_error',
        detail: status === 402 ? 'Your card was declined.' : 'No such price',
      });
      const cancel = await s.command('cancel', { timing: 'period_end' });
      expect(cancel.status).toBe(502);
      // The same Idempotency-Key is the same Stripe attempt; without one, each request is a new one.
      const keys: unknown[] = [];
      for (const header of ['retry-1', 'retry-1', undefined]) {
        const res = await app.json(
          'POST',
          `/v1/subscriptions/${s.subscriptionId('basic')}/change`,
          { plan: s.key('pro'), timing: 'immediate' },
          header ? { headers: { 'idempotency-key': header } } : {},
        );
        expect(res.status).toBe(502);
        keys.push(stripe.requests.at(-1)?.headers['idempotency-key']);
      }
      expect(keys[0]).toBe(keys[1]);
      expect(keys[2]).not.toBe(keys[0]);
      expect(await s.subscription('basic')).toEqual(before);
      expect(await trail(s.customerId)).toEqual(trailBefore);
    });
  }

  it('taking back a cancellation or a scheduled change is pushed too', async () => {
    await connect('tessera');
    const s = await setup();
    await linkedSubscription(s);
    const path = `/v1/subscriptions/sub_stripe_${s.suffix}`;
    stripe.on(`POST ${path}`, () => ({ body: { id: `sub_stripe_${s.suffix}`, object: 'subscription' } }));
    expect((await s.command('cancel', { timing: 'period_end' })).status).toBe(200);
    expect((await s.command('uncancel')).status).toBe(200);
    expect(stripe.requests.at(-1)?.form.get('cancel_at_period_end')).toBe('false');
    expect((await s.command('change', { plan: s.key('pro'), timing: 'period_end' })).status).toBe(200);
    expect(Object.fromEntries(stripe.requests.at(-1)!.form)).toMatchObject({
      'items[0][price]': 'price_pro_lk',
      proration_behavior: 'none',
    });
    const dropped = await app.json(
      'DELETE',
      `/v1/subscriptions/${s.subscriptionId('basic')}/scheduled-change`,
    );
    expect(dropped.status).toBe(200);
    expect(Object.fromEntries(stripe.requests.at(-1)!.form)).toMatchObject({
      'items[0][price]': 'price_basic',
      proration_behavior: 'none',
    });
  });

  it('pushes nothing when Stripe leads the lifecycle, or the subscription is not linked', async () => {
    await connect('stripe');
    const s = await setup();
    const id = await linkedSubscription(s);
    const res = await app.json('POST', `/v1/subscriptions/${id}/change`, {
      plan: s.key('pro'),
      timing: 'immediate',
    });
    expect(res.status).toBe(200);
    await connect('tessera');
    const other = await scenario(app).customer('beta');
    await other.call('POST', `/v1/customers/${other.customerId}/subscriptions`, { plan: s.key('basic') });
    const subs = await other.call<{ data: Body[] }>('GET', `/v1/customers/${other.customerId}/subscriptions`);
    const unlinked = subs.data[0]!;
    expect(unlinked.stripe).toBeNull();
    const change = await app.json('POST', `/v1/subscriptions/${unlinked.id}/change`, {
      plan: s.key('pro'),
      timing: 'immediate',
    });
    expect(change.status).toBe(200);
    expect(stripe.requests.filter((r) => r.path.startsWith('/v1/subscriptions'))).toHaveLength(0);
  });
});
