import { sql } from 'kysely';
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { PermanentStripeError } from '../../src/modules/billing/apply/index.ts';
import type { ApplyStripeEvent } from '../../src/modules/billing/events.ts';
import { ManualClock } from '../../src/platform/clock.ts';
import { StripeEventWorker } from '../../src/workers/stripe-events.ts';
import { createTestApp, serveOverHttp, services, type TestApp } from '../helpers/harness.ts';
import { type OwnRedis, startOwnRedis } from '../helpers/own-redis.ts';
import { signature, subscriptionEvent } from '../helpers/stripe-webhook-events.ts';

const WEBHOOK = 'whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw==';
const OTHER_SECRET = 'whsec_b3RoZXItc2lnbmluZy1rZXktbm90LW91cnM=';

interface EventBody {
  id: string;
  status: string;
  attempts: number;
  last_error: string | null;
  detail: string | null;
  type: string;
}

/** An apply step the test steers: events whose metadata says `fail` throw, `permanent` fails at once. */
function steeredApply() {
  const state = { failing: true, calls: new Map<string, number>() };
  const apply: ApplyStripeEvent = async (_ctx, event) => {
    state.calls.set(event.id, (state.calls.get(event.id) ?? 0) + 1);
    const metadata = (event.data.object as { metadata?: Record<string, string> }).metadata ?? {};
    if (metadata.mode === 'permanent') throw new PermanentStripeError('the subscription contradicts Tessera');
    if (metadata.mode === 'fail' && state.failing) throw new Error('database briefly unavailable');
    return { outcome: metadata.mode ? 'applied' : 'ignored', detail: 'steered' };
  };
  return { state, apply };
}

function webhookClient(app: TestApp, now: () => number) {
  const post = (environment: string, body: string, header: string | undefined) =>
    app.json<Record<string, unknown>>('POST', `/v1/webhooks/stripe/${environment}`, body, {
      key: null,
      headers: header === undefined ? {} : { 'stripe-signature': header },
    });
  return {
    post,
    /** Signs the event as Stripe would, now, and posts it. */
    send: (event: Stripe.Event, environment = 'test') => {
      const body = JSON.stringify(event);
      return post(environment, body, signature(body, WEBHOOK, now()));
    },
    event: async (id: string) => (await app.json<EventBody>('GET', `/v1/stripe/events/${id}`)).body,
    count: async () => {
      const r = await sql<{ n: string }>`SELECT count(*) AS n FROM stripe_events`.execute(
        app.runtime.deps.db,
      );
      return Number(r.rows[0]!.n);
    },
  };
}

describe('Stripe webhooks, processed in process (no Redis)', () => {
  let app: TestApp;
  const clock = new ManualClock('2026-12-07T12:00:00Z');
  const seconds = () => Math.floor(clock.now().getTime() / 1000);
  let hooks: ReturnType<typeof webhookClient>;
  beforeAll(async () => {
    app = await createTestApp({ clock });
    hooks = webhookClient(app, seconds);
    expect((await app.json('PUT', '/v1/stripe/settings', { webhook_secret: WEBHOOK })).status).toBe(200);
  });
  afterAll(async () => app?.close());

  it('stores a verified event once and processes it once; a duplicate answers 200 and does nothing', async () => {
    const event = subscriptionEvent({ created: seconds() });
    const first = await hooks.send(event);
    expect(first).toMatchObject({ status: 200, body: { received: true, id: event.id, duplicate: false } });
    expect(await hooks.event(event.id)).toMatchObject({ status: 'received', attempts: 0 });

    expect(await app.runtime.stripeEvents.runDue()).toBe(1);
    const stored = await app.json<EventBody & { payload: Stripe.Event; object_id: string }>(
      'GET',
      `/v1/stripe/events/${event.id}`,
    );
    expect(stored.body).toMatchObject({
      status: 'ignored',
      attempts: 1,
      // No plan lists the event's price: recorded, and the event is ignored with the item named.
      detail: expect.stringContaining('unmapped price on sub_1QTesseraTest0001'),
      type: 'customer.subscription.updated',
      object_type: 'subscription',
      object_id: 'sub_1QTesseraTest0001',
      api_version: event.api_version,
      livemode: false,
    });
    expect(stored.body.payload).toEqual(JSON.parse(JSON.stringify(event)));

    const before = await hooks.count();
    const again = await hooks.send(event);
    expect(again).toMatchObject({ status: 200, body: { duplicate: true } });
    expect(await hooks.count()).toBe(before);
    expect(await app.runtime.stripeEvents.runDue()).toBe(0);
    expect(await hooks.event(event.id)).toMatchObject({ status: 'ignored', attempts: 1 });
  });

  it('refuses a bad signature, a stale (replayed) one and a missing one with 400, storing nothing', async () => {
    const before = await hooks.count();
    const event = subscriptionEvent({ created: seconds() });
    const body = JSON.stringify(event);

    const wrongSecret = await hooks.post('test', body, signature(body, OTHER_SECRET, seconds()));
    expect(wrongSecret.status).toBe(400);
    expect(wrongSecret.body).toMatchObject({ code: 'stripe_signature_invalid' });
    expect(wrongSecret.headers.get('content-type')).toContain('application/problem+json');

    const tampered = await hooks.post(
      'test',
      body.replace('"active"', '"canceled"'),
      signature(body, WEBHOOK, seconds()),
    );
    expect(tampered.body).toMatchObject({ status: 400, code: 'stripe_signature_invalid' });

    // A header captured 301 s ago and sent again now.
    const captured = signature(body, WEBHOOK, seconds());
    clock.advance(301_000);
    const replayed = await hooks.post('test', body, captured);
    expect(replayed.status).toBe(400);
    expect(replayed.body).toMatchObject({
      code: 'stripe_signature_expired',
      errors: [{ path: 'header.stripe-signature' }],
    });

    const missing = await hooks.post('test', body, undefined);
    expect(missing.body).toMatchObject({ status: 400, code: 'stripe_signature_missing' });
    expect(await hooks.count()).toBe(before);
  });

  it('refuses a correctly signed body that is not JSON, or not a Stripe event, or of the other mode', async () => {
    const before = await hooks.count();
    const malformed = '{"id": "evt_1Qx", "object": ';
    const bad = await hooks.post('test', malformed, signature(malformed, WEBHOOK, seconds()));
    expect(bad.body).toMatchObject({ status: 400, code: 'malformed_json', errors: [{ path: '(body)' }] });

    const notEvent = JSON.stringify({ id: 'evt_1Qx', object: 'event', created: seconds(), livemode: false });
    const shape = await hooks.post('test', notEvent, signature(notEvent, WEBHOOK, seconds()));
    expect(shape.status).toBe(400);
    expect(shape.body).toMatchObject({ code: 'validation_failed' });
    expect((shape.body.errors as { path: string }[]).map((e) => e.path)).toEqual(
      expect.arrayContaining(['type', 'data']),
    );

    const live = await hooks.send(subscriptionEvent({ created: seconds(), livemode: true }));
    expect(live.body).toMatchObject({ status: 400, code: 'stripe_livemode_mismatch' });
    expect(await hooks.count()).toBe(before);
  });

  it('answers 404 for an unknown environment and 400 where no webhook secret is set', async () => {
    const event = subscriptionEvent({ created: seconds() });
    expect((await hooks.send(event, 'staging')).body).toMatchObject({
      status: 404,
      code: 'environment_not_found',
    });
    expect(
      (await hooks.send(subscriptionEvent({ created: seconds(), livemode: true }), 'live')).body,
    ).toMatchObject({
      status: 400,
      code: 'stripe_webhook_not_configured',
    });
  });

  it('records an event of a type nobody handles as ignored', async () => {
    const event = subscriptionEvent({ created: seconds(), type: 'radar.early_fraud_warning.created' });
    expect((await hooks.send(event)).status).toBe(200);
    await app.runtime.stripeEvents.runDue();
    expect(await hooks.event(event.id)).toMatchObject({
      status: 'ignored',
      type: 'radar.early_fraud_warning.created',
    });
  });

  it('retries a failing event with growing delays, fails it after the last attempt, and replays it', async () => {
    const { state, apply } = steeredApply();
    const worker = new StripeEventWorker(() => app.runtime.deps, { apply, maxAttempts: 3, backoffMs: 1_000 });
    const event = subscriptionEvent({ created: seconds(), metadata: { mode: 'fail' } });
    await hooks.send(event);

    expect(await worker.runDue()).toBe(1);
    expect(await hooks.event(event.id)).toMatchObject({
      status: 'received',
      attempts: 1,
      last_error: 'database briefly unavailable',
    });
    expect(await worker.runDue()).toBe(0); // not due before its delay
    clock.advance(1_000);
    expect(await worker.runDue()).toBe(1);
    clock.advance(1_999);
    expect(await worker.runDue()).toBe(0);
    clock.advance(1);
    expect(await worker.runDue()).toBe(1);
    expect(await hooks.event(event.id)).toMatchObject({ status: 'failed', attempts: 3 });
    expect(state.calls.get(event.id)).toBe(3);

    const failed = await app.json<{ data: EventBody[] }>('GET', '/v1/stripe/events?status=failed');
    expect(failed.body.data.map((e) => e.id)).toEqual([event.id]);

    expect(
      (await app.json('POST', `/v1/stripe/events/${event.id}/replay`, undefined, { key: app.checkKey }))
        .status,
    ).toBe(403);
    state.failing = false;
    const replay = await app.json<EventBody>('POST', `/v1/stripe/events/${event.id}/replay`);
    expect(replay).toMatchObject({ status: 202, body: { status: 'received', attempts: 0 } });
    expect(await worker.runDue()).toBe(1);
    expect(await hooks.event(event.id)).toMatchObject({ status: 'applied', attempts: 1, last_error: null });
    const audit = await app.json<{ data: { action: string; target: { id: string } }[] }>(
      'GET',
      '/v1/audit-events?action=stripe.event_replayed',
    );
    expect(audit.body.data.map((a) => a.target.id)).toEqual([event.id]);

    const applied = await app.json('POST', `/v1/stripe/events/${event.id}/replay`);
    expect(applied.body).toMatchObject({ status: 409, code: 'stripe_event_not_replayable' });
  });

  it('fails an event at once on a permanent error, and refuses to replay one being processed', async () => {
    const { apply } = steeredApply();
    const worker = new StripeEventWorker(() => app.runtime.deps, { apply, maxAttempts: 8 });
    const event = subscriptionEvent({ created: seconds(), metadata: { mode: 'permanent' } });
    await hooks.send(event);
    await worker.runDue();
    expect(await hooks.event(event.id)).toMatchObject({
      status: 'failed',
      attempts: 1,
      last_error: 'the subscription contradicts Tessera',
    });
    await app.runtime.deps.db
      .updateTable('stripe_events')
      .set({ status: 'processing' })
      .where('id', '=', event.id)
      .execute();
    const busy = await app.json('POST', `/v1/stripe/events/${event.id}/replay`);
    expect(busy.body).toMatchObject({ status: 409, code: 'stripe_event_processing' });
    await app.runtime.deps.db
      .updateTable('stripe_events')
      .set({ status: 'failed' })
      .where('id', '=', event.id)
      .execute();
    expect((await app.json('POST', '/v1/stripe/events/evt_unknown/replay')).status).toBe(404);
  });

  it('lists by type, pages with a cursor, and keeps the routes from a check key and the other environment', async () => {
    const page1 = await app.json<{ data: EventBody[]; next_cursor: string | null }>(
      'GET',
      '/v1/stripe/events?type=customer.subscription.updated&limit=2',
    );
    expect(page1.body.data).toHaveLength(2);
    expect(page1.body.data.every((e) => e.type === 'customer.subscription.updated')).toBe(true);
    const page2 = await app.json<{ data: EventBody[] }>(
      'GET',
      `/v1/stripe/events?type=customer.subscription.updated&limit=2&cursor=${page1.body.next_cursor}`,
    );
    const ids = [...page1.body.data, ...page2.body.data].map((e) => e.id);
    expect(new Set(ids).size).toBe(ids.length);

    const id = page1.body.data[0]!.id;
    for (const path of ['/v1/stripe/events', `/v1/stripe/events/${id}`]) {
      expect((await app.json('GET', path, undefined, { key: app.checkKey })).status).toBe(403);
    }
    expect(
      (await app.json('GET', `/v1/stripe/events/${id}`, undefined, { key: app.liveAdminKey })).status,
    ).toBe(404);
    expect(
      (await app.json<{ data: unknown[] }>('GET', '/v1/stripe/events', undefined, { key: app.liveAdminKey }))
        .body.data,
    ).toEqual([]);
  });

  it('takes over an event whose worker died mid-way once its claim lapses', async () => {
    const event = subscriptionEvent({ created: seconds() });
    await hooks.send(event);
    // A worker claimed it (status processing, one attempt) and was never heard of again.
    await app.runtime.deps.db
      .updateTable('stripe_events')
      .set({ status: 'processing', attempts: 1, next_attempt_at: new Date(clock.now().getTime() + 300_000) })
      .where('id', '=', event.id)
      .execute();
    expect(await app.runtime.stripeEvents.runDue()).toBe(0);
    clock.advance(300_000);
    expect(await app.runtime.stripeEvents.runDue()).toBe(1);
    expect(await hooks.event(event.id)).toMatchObject({ status: 'ignored', attempts: 2 });
  });

  it('reads the raw bytes over the real HTTP server, as Stripe sends them', async () => {
    const http = await serveOverHttp(app.runtime);
    try {
      // Stripe's body is pretty-printed JSON with non-ASCII text; any re-serialisation would break the signature.
      const event = subscriptionEvent({ created: seconds(), metadata: { name: 'Zoë Ünal 🧾' } });
      const body = JSON.stringify(event, null, 2);
      const send = (header: string) =>
        fetch(`${http.base}/v1/webhooks/stripe/test`, {
          method: 'POST',
          headers: { 'content-type': 'application/json; charset=utf-8', 'stripe-signature': header },
          body,
        });
      const ok = await send(signature(body, WEBHOOK, seconds()));
      expect(ok.status).toBe(200);
      expect(await ok.json()).toMatchObject({ id: event.id, duplicate: false });
      const bad = await send(signature(`${body} `, WEBHOOK, seconds()));
      expect(bad.status).toBe(400);
      expect(bad.headers.get('content-type')).toContain('application/problem+json');
      const problem = (await bad.json()) as { code: string; request_id: string };
      expect(problem.code).toBe('stripe_signature_invalid');
      expect(problem.request_id).toBe(bad.headers.get('x-request-id'));
    } finally {
      await http.close();
    }
  });

  it('processes on its own once started: intake pokes the loop', async () => {
    const worker = app.runtime.stripeEvents;
    await worker.start();
    try {
      const event = subscriptionEvent({ created: seconds() });
      await hooks.send(event);
      await vi.waitFor(async () => expect((await hooks.event(event.id)).status).toBe('ignored'), {
        timeout: 5_000,
        interval: 20,
      });
    } finally {
      await worker.stop();
    }
  });
});

describe.skipIf(!services.redis)('Stripe webhooks, processed on BullMQ (Redis)', () => {
  let app: TestApp;
  let worker: StripeEventWorker;
  const steered = steeredApply();
  const seconds = () => Math.floor(Date.now() / 1000);
  let hooks: ReturnType<typeof webhookClient>;
  beforeAll(async () => {
    app = await createTestApp({ redis: true });
    hooks = webhookClient(app, seconds);
    await app.json('PUT', '/v1/stripe/settings', { webhook_secret: WEBHOOK });
    worker = new StripeEventWorker(() => app.runtime.deps, {
      apply: steered.apply,
      maxAttempts: 3,
      backoffMs: 20,
    });
    await worker.start();
  });
  afterAll(async () => {
    await worker?.stop();
    await app?.close();
  });
  const settles = (id: string, status: string) =>
    vi.waitFor(async () => expect((await hooks.event(id)).status).toBe(status), {
      timeout: 10_000,
      interval: 25,
    });

  it('processes a stored event once however often it is delivered', async () => {
    const event = subscriptionEvent({ created: seconds() });
    const answers = await Promise.all([hooks.send(event), hooks.send(event), hooks.send(event)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(answers.filter((a) => a.body.duplicate === false)).toHaveLength(1);
    await settles(event.id, 'ignored');
    expect(await hooks.event(event.id)).toMatchObject({ attempts: 1 });
    expect(steered.state.calls.get(event.id)).toBe(1);
    expect(await hooks.count()).toBe(1);
  });

  it('retries with backoff, dead-letters after the last attempt, and replays', async () => {
    const event = subscriptionEvent({ created: seconds(), metadata: { mode: 'fail' } });
    await hooks.send(event);
    await settles(event.id, 'failed');
    expect(await hooks.event(event.id)).toMatchObject({
      attempts: 3,
      last_error: 'database briefly unavailable',
    });
    const failed = await app.json<{ data: EventBody[] }>('GET', '/v1/stripe/events?status=failed');
    expect(failed.body.data.map((e) => e.id)).toEqual([event.id]);

    steered.state.failing = false;
    expect((await app.json('POST', `/v1/stripe/events/${event.id}/replay`)).status).toBe(202);
    await settles(event.id, 'applied');
    expect(steered.state.calls.get(event.id)).toBe(4);
  });

  it('enqueues again an event whose message was lost', async () => {
    const event = subscriptionEvent({ created: seconds() });
    const now = new Date(Date.now() - 60_000);
    await app.runtime.deps.db
      .insertInto('stripe_events')
      .values({
        environment: 'test',
        id: event.id,
        type: event.type,
        api_version: event.api_version,
        created: event.created,
        livemode: false,
        object_type: 'subscription',
        object_id: 'sub_1QTesseraTest0001',
        payload: JSON.stringify(event),
        status: 'received',
        received_at: now,
        next_attempt_at: now,
      })
      .execute();
    expect(await worker.sweep()).toBe(1);
    await settles(event.id, 'ignored');
  });
});

describe.skipIf(!services.redis)('Stripe webhooks while Redis is down', () => {
  let own: OwnRedis;
  let app: TestApp;
  let worker: StripeEventWorker | null = null;
  beforeAll(async () => {
    own = await startOwnRedis();
    app = await createTestApp({ redis: true, config: { redisUrl: own.url } });
    await app.json('PUT', '/v1/stripe/settings', { webhook_secret: WEBHOOK });
  });
  afterAll(async () => {
    await worker?.stop();
    await app?.close().catch(() => {});
    await own?.stop();
  });

  it('still stores and answers at once, and the sweep enqueues the event when Redis is back', async () => {
    const hooks = webhookClient(app, () => Math.floor(Date.now() / 1000));
    await own.stop();
    const event = subscriptionEvent({ created: Math.floor(Date.now() / 1000) });
    const started = Date.now();
    const answer = await Promise.race([
      hooks.send(event),
      new Promise<null>((r) => setTimeout(() => r(null), 3_000)),
    ]);
    expect(answer).toMatchObject({ status: 200, body: { duplicate: false } });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(await hooks.event(event.id)).toMatchObject({ status: 'received' });
    await own.restart();
    worker = new StripeEventWorker(() => app.runtime.deps, { sweepMs: 50 });
    await worker.start();
    await vi.waitFor(async () => expect((await hooks.event(event.id)).status).toBe('ignored'), {
      timeout: 10_000,
      interval: 25,
    });
  });
});
