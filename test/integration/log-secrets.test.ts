import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/platform/logger.ts';
import { type FakeStripe, startFakeStripe } from '../helpers/fake-stripe.ts';
import { createTestApp, serveOverHttp, type TestApp } from '../helpers/harness.ts';
import { secretsIn } from '../helpers/log-scan.ts';
import { eventId, signature, subscriptionEvent } from '../helpers/stripe-webhook-events.ts';

/**
 * A realistic session against a server logging at debug level, over node:http (fast paths
 * included) and through the app: keys made and used, a bogus key, webhook endpoints and a
 * delivery, Stripe settings, signed and forged Stripe webhooks, a failing Stripe call, tokens.
 * Then every line it logged is searched for each secret the session saw and for anything shaped
 * like a credential.
 */
const lines: string[] = [];
const logger = createLogger('debug', { write: (line: string) => void lines.push(line) });
const STRIPE_SECRET = 'sk_test_51HlogSecret0123456789abcdefXYZ';
const STRIPE_WEBHOOK = 'whsec_bG9nLXNlY3JldC1zaWduaW5nLWtleS0wMTIz';

let app: TestApp;
let http: Awaited<ReturnType<typeof serveOverHttp>>;
let stripe: FakeStripe;
let receiver: Server;
let receiverUrl: string;
const seen: string[] = [];

beforeAll(async () => {
  stripe = await startFakeStripe();
  stripe.on('GET /v1/subscriptions', () => ({ status: 500, body: { error: { message: 'down' } } }));
  stripe.on('GET /v1/customers', () => ({ status: 500, body: { error: { message: 'down' } } }));
  receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200).end());
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  app = await createTestApp({
    logger,
    config: {
      logLevel: 'debug',
      apiKeyCacheSeconds: 5,
      webhooksAllowLoopback: true,
      stripeApiBase: stripe.url,
    },
  });
  http = await serveOverHttp(app.runtime);
  seen.push(app.adminKey, app.checkKey, app.liveAdminKey, STRIPE_SECRET, STRIPE_WEBHOOK);
});
afterAll(async () => {
  await http?.close();
  await app?.close();
  await stripe?.close();
  await new Promise((r) => receiver?.close(r));
});

const send = (path: string, key: string, body?: unknown, method = 'POST') =>
  fetch(`${http.base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${key}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

describe('secrets never reach the logs', () => {
  it('logs none of a session’s secrets at debug level', async () => {
    const admin = app.adminKey;
    expect((await send('/v1/features', admin, { key: 'calls', name: 'Calls', type: 'metered' })).status).toBe(
      201,
    );
    await send('/v1/plans', admin, {
      key: 'pro',
      name: 'Pro',
      entitlements: [{ feature: 'calls', limit: 100, reset: 'month', overage: 'deny' }],
    });
    await send('/v1/customers/acme', admin, { name: 'Acme' }, 'PUT');
    await send('/v1/customers/acme/subscriptions', admin, { plan: 'pro' });

    const key = (await (
      await send('/v1/api-keys', admin, { name: 'backend', scopes: ['check'] })
    ).json()) as {
      secret: string;
      id: string;
    };
    seen.push(key.secret);
    for (let i = 0; i < 3; i++) {
      expect((await send('/v1/check', key.secret, { customer_id: 'acme', feature: 'calls' })).status).toBe(
        200,
      );
      await send('/v1/usage', key.secret, {
        customer_id: 'acme',
        feature: 'calls',
        idempotency_key: `l-${i}`,
      });
    }
    // Refused keys, on the fast path and in the app.
    const bogus = 'sk_test_bogusbogusbogus0123456789';
    seen.push(bogus);
    expect((await send('/v1/check', bogus, { customer_id: 'acme', feature: 'calls' })).status).toBe(401);
    expect((await send('/v1/features', bogus, undefined, 'GET')).status).toBe(401);
    expect((await send('/v1/features', 'not-even-a-key-shape-0123', undefined, 'GET')).status).toBe(401);
    seen.push('not-even-a-key-shape-0123');
    // A check key on an admin route, and an invalid body with a secret inside it.
    expect((await send('/v1/features', key.secret, undefined, 'GET')).status).toBe(403);
    expect((await send('/v1/features', admin, { key: 'x', name: key.secret, type: 'nope' })).status).toBe(
      400,
    );

    const token = (await (await send('/v1/customers/acme/token', key.secret, {})).json()) as {
      token: string;
    };
    seen.push(token.token);
    expect((await send('/v1/features', token.token, undefined, 'GET')).status).toBe(401);

    const endpoint = (await (await send('/v1/webhook-endpoints', admin, { url: receiverUrl })).json()) as {
      secret: string;
    };
    seen.push(endpoint.secret);
    await send('/v1/customers/acme', admin, { name: 'Acme 2' }, 'PUT');
    await app.runtime.dispatcher.drain();
    await app.runtime.webhooks.drain();

    const settings = await send(
      '/v1/stripe/settings',
      admin,
      { secret_key: STRIPE_SECRET, webhook_secret: STRIPE_WEBHOOK },
      'PUT',
    );
    expect(settings.status).toBe(200);
    // Forged and signed Stripe webhooks.
    const event = JSON.stringify(
      subscriptionEvent({ id: eventId(), created: Math.floor(Date.now() / 1000) }),
    );
    const forged = await fetch(`${http.base}/v1/webhooks/stripe/test`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'stripe-signature': 't=1,v1=deadbeef' },
      body: event,
    });
    expect(forged.status).toBe(400);
    const signed = await fetch(`${http.base}/v1/webhooks/stripe/test`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'stripe-signature': signature(event, STRIPE_WEBHOOK, Math.floor(Date.now() / 1000)),
      },
      body: event,
    });
    expect(signed.status).toBe(200);
    // A Stripe call that fails is logged with its error.
    await send('/v1/stripe/reconciliations', admin, {});

    const text = lines.join('');
    expect(lines.length).toBeGreaterThan(20);
    expect(text).toContain('"level":20');
    expect(secretsIn(text, seen)).toEqual([]);
  });

  it('removes credentials wherever a caller puts them in a log line', () => {
    const captured: string[] = [];
    const log = createLogger('debug', { write: (line: string) => void captured.push(line) });
    const secret = 'sk_test_redactMe0123456789abcdef';
    const err = Object.assign(new Error('request failed'), {
      headers: { authorization: `Bearer ${secret}` },
      raw: { headers: { authorization: `Bearer ${secret}` } },
      config: { headers: { authorization: `Bearer ${secret}` } },
    });
    log.error({ err }, 'an HTTP client failed');
    log.info({ headers: { authorization: `Bearer ${secret}` }, secret, token: secret }, 'fields');
    log.info({ settings: { secret_key: secret, webhook_secret: secret, secretKey: secret } }, 'nested');
    log.info({ authorization: `Bearer ${secret}`, req: { headers: { authorization: secret } } }, 'top');
    expect(captured).toHaveLength(4);
    expect(secretsIn(captured.join(''), [secret])).toEqual([]);
  });
});
