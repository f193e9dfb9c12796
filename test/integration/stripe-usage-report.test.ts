/** Usage out to Stripe meters: each ledger event reaches the meter events endpoint once, across a restart. */
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { StripeUsageReporter } from '../../src/modules/billing/usage-report.ts';
import { StripeUsageReportJob } from '../../src/workers/stripe-usage-report.ts';
import { type FakeStripe, type StripeRequest, startFakeStripe } from '../helpers/fake-stripe.ts';
import { createTestApp, type TestApp } from '../helpers/harness.ts';

let app: TestApp;
let stripe: FakeStripe;
const SECRET = 'sk_test_51Hfake0123456789abcdefXYZ4242';
const WEBHOOK = 'whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw==';
const DAY = 86_400_000;

beforeAll(async () => {
  stripe = await startFakeStripe();
  app = await createTestApp({ config: { stripeApiBase: stripe.url } });
  await app.json('PUT', '/v1/stripe/settings', { secret_key: SECRET, webhook_secret: WEBHOOK });
  for (const [key, type] of [
    ['api_calls', 'metered'],
    ['storage', 'metered'],
  ] as const) {
    expect((await app.json('POST', '/v1/features', { key, name: key, type })).status).toBe(201);
  }
  const linked = await app.json('PATCH', '/v1/features/api_calls', {
    stripe_meter: { event_name: 'api_calls' },
  });
  expect(linked.body).toMatchObject({ stripe_meter: { event_name: 'api_calls' } });
  await app.json('PUT', '/v1/customers/acme', { name: 'Acme', stripe_customer_id: 'cus_acme' });
  await app.json('PUT', '/v1/customers/beta', { name: 'Beta', stripe_customer_id: 'cus_beta' });
  await app.json('PUT', '/v1/customers/nolink', { name: 'No link' });
});
afterAll(async () => {
  await app?.close();
  await stripe?.close();
});

/** Stripe's meter events endpoint: identifiers dedupe (a repeat is a replay, not a second event). */
let accepted: Map<string, StripeRequest>;
let duplicates: number;
let calls: number;
let failOn: (call: number) => { status: number; headers?: Record<string, string> } | null;
beforeEach(async () => {
  accepted = new Map();
  duplicates = 0;
  calls = 0;
  failOn = () => null;
  stripe.requests.length = 0;
  stripe.on('POST /v1/billing/meter_events', (r) => {
    calls += 1;
    const failure = failOn(calls);
    if (failure) {
      return {
        status: failure.status,
        body: { error: { type: 'api_error', message: `failure ${failure.status}` } },
        ...(failure.headers ? { headers: failure.headers } : {}),
      };
    }
    const identifier = r.form.get('identifier') ?? '';
    if (accepted.has(identifier)) duplicates += 1;
    else accepted.set(identifier, r);
    return {
      body: {
        object: 'billing.meter_event',
        event_name: r.form.get('event_name'),
        identifier,
        payload: {},
        created: 1,
        livemode: false,
        timestamp: Number(r.form.get('timestamp')),
      },
    };
  });
  await app.runtime.deps.db.deleteFrom('usage_events').execute();
  await app.runtime.deps.db.deleteFrom('stripe_usage_reports').execute();
});

let seq = 0;
async function ledger(
  customer: string,
  feature: string,
  value: number,
  occurredAt = new Date(),
): Promise<number> {
  seq += 1;
  const row = await app.runtime.deps.db
    .insertInto('usage_events')
    .values({
      environment: 'test',
      customer_id: customer,
      feature,
      idempotency_key: `k${seq}`,
      value,
      counted: value,
      member: null,
      occurred_at: occurredAt,
      period_start: occurredAt,
      period_end: null,
      overage: 0,
      credit: 0,
      credit_draws: '{}',
      answer: '{}',
      reservation_id: null,
    })
    .returning('id')
    .executeTakeFirstOrThrow();
  return Number(row.id);
}

const cursor = async () =>
  Number(
    (
      await app.runtime.deps.db
        .selectFrom('stripe_usage_reports')
        .select('last_event_id')
        .where('environment', '=', 'test')
        .executeTakeFirst()
    )?.last_event_id ?? 0,
  );

describe('usage to Stripe meters', () => {
  it('sends every metered ledger event exactly once across a restart in the middle', async () => {
    const expected: number[] = [];
    const all: number[] = [];
    for (let i = 0; i < 14; i++) {
      const id = await ledger(i % 2 ? 'acme' : 'beta', 'api_calls', i + 1);
      expected.push(id);
      all.push(id);
      if (i % 5 === 0) all.push(await ledger('nolink', 'api_calls', 1)); // no Stripe customer: skipped
      if (i % 4 === 0) all.push(await ledger('acme', 'storage', 7)); // no meter: not reported
    }
    // The 5th call fails and the first reporter gives up at once: a stop after a partial batch.
    failOn = (call) => (call === 5 ? { status: 500 } : null);
    const first = new StripeUsageReporter(app.runtime.deps, {
      batchSize: 6,
      concurrency: 3,
      maxAttempts: 1,
      settleSeconds: 0,
    });
    const stopped = await first.runOnce();
    expect(stopped.interrupted).toBe(true);
    const midway = await cursor();
    expect(midway).toBeGreaterThan(0);
    expect(midway).toBeLessThan(Math.max(...all));

    const second = new StripeUsageReporter(app.runtime.deps, {
      batchSize: 6,
      concurrency: 3,
      settleSeconds: 0,
    });
    const resumed = await second.runOnce();
    expect(resumed.interrupted).toBe(false);
    expect(resumed.skipped).toBeGreaterThan(0);

    expect([...accepted.keys()].sort()).toEqual(expected.map((id) => `tessera:test:${id}`).sort());
    // Resent only what the cursor had not passed (at most one batch), dropped by Stripe as duplicates.
    expect(duplicates).toBeLessThan(6);
    expect(await cursor()).toBe(Math.max(...all));
    const one = accepted.get(`tessera:test:${expected[1]}`)!;
    expect(Object.fromEntries(one.form)).toMatchObject({
      event_name: 'api_calls',
      'payload[stripe_customer_id]': 'cus_acme',
      'payload[value]': '2',
      identifier: `tessera:test:${expected[1]}`,
    });
    expect(one.headers['idempotency-key']).toBe(`tessera:test:${expected[1]}`);

    // Nothing new: nothing sent.
    const before = calls;
    expect((await second.runOnce()).sent).toBe(0);
    expect(calls).toBe(before);
  });

  it('waits as long as a 429’s Retry-After says, and clamps old events into Stripe’s window', async () => {
    const now = Date.now();
    const old = await ledger('acme', 'api_calls', 5, new Date(now - 40 * DAY));
    failOn = (call) => (call === 1 ? { status: 429, headers: { 'retry-after': '3' } } : null);
    const waits: number[] = [];
    const reporter = new StripeUsageReporter(app.runtime.deps, {
      settleSeconds: 0,
      wait: async (ms) => {
        waits.push(ms);
      },
    });
    const run = await reporter.runOnce();
    expect(run).toMatchObject({ sent: 1, interrupted: false });
    expect(waits).toEqual([3000]);
    const timestamp = Number(accepted.get(`tessera:test:${old}`)?.form.get('timestamp'));
    expect(timestamp * 1000).toBeGreaterThan(now - 35 * DAY);
    expect(timestamp * 1000).toBeLessThanOrEqual(Date.now());
  });

  it('runs as a job in the worker role (a timer without Redis) until stopped', async () => {
    const id = await ledger('beta', 'api_calls', 3);
    const job = new StripeUsageReportJob(app.runtime.deps, 60_000, { settleSeconds: 0 });
    await job.start();
    try {
      await vi.waitFor(() => expect(accepted.has(`tessera:test:${id}`)).toBe(true), { timeout: 5_000 });
    } finally {
      await job.stop();
    }
    expect(await cursor()).toBe(id);
  });

  it('links a meter only to metered features, naming the field', async () => {
    await app.json('POST', '/v1/features', { key: 'sso', name: 'SSO', type: 'boolean' });
    const patch = await app.json<{ code: string; errors: { path: string }[] }>('PATCH', '/v1/features/sso', {
      stripe_meter: { event_name: 'sso' },
    });
    expect(patch.status).toBe(422);
    expect(patch.body.errors[0]?.path).toBe('stripe_meter');
    const create = await app.json<{ errors: { path: string }[] }>('POST', '/v1/features', {
      key: 'flag',
      name: 'Flag',
      type: 'boolean',
      stripe_meter: { event_name: 'flag' },
    });
    expect(create.status).toBe(400);
    expect(create.body.errors.map((e) => e.path)).toContain('stripe_meter');
    const bad = await app.json<{ errors: { path: string }[] }>('PATCH', '/v1/features/storage', {
      stripe_meter: { event_name: 'has spaces' },
    });
    expect(bad.status).toBe(400);
    const unlinked = await app.json('PATCH', '/v1/features/storage', { stripe_meter: null });
    expect(unlinked.body).toMatchObject({ stripe_meter: null });
  });
});
