import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkFastRoute, parseCheck } from '../../src/http/check-fast-path.ts';
import type { ApiKeyResolver } from '../../src/platform/auth.ts';
import { createFastPath } from '../../src/platform/fast-path.ts';
import { createTestApp, serveOverHttp, type TestApp } from '../helpers/harness.ts';

/**
 * The node:http fast path for POST /v1/check must answer exactly as the Hono route does, and hand
 * everything it does not take (bad input, unknown keys, idempotency) to the app.
 */
let app: TestApp;
let http: Awaited<ReturnType<typeof serveOverHttp>>;
let base: string;

beforeAll(async () => {
  // Keys cached as in production, so the fast path can recognise them.
  app = await createTestApp({ config: { apiKeyCacheSeconds: 5 } });
  await app.json('POST', '/v1/features', { key: 'sso', name: 'SSO', type: 'boolean' });
  await app.json('POST', '/v1/features', { key: 'theme', name: 'Theme', type: 'config' });
  await app.json('POST', '/v1/features', { key: 'calls', name: 'Calls', type: 'metered' });
  await app.json('POST', '/v1/plans', {
    key: 'pro',
    name: 'Pro',
    entitlements: [
      { feature: 'sso', enabled: true },
      { feature: 'theme', value: { c: 1 } },
      { feature: 'calls', limit: 2, reset: 'none', overage: 'allow' },
    ],
  });
  await app.json('PUT', '/v1/customers/acme', { attributes: { region: 'eu' } });
  await app.json('POST', '/v1/customers/acme/subscriptions', { plan: 'pro' });
  // Past the soft limit (overage_used) and an override that disables sso (disabled_by_override).
  await app.json('POST', '/v1/usage', {
    customer_id: 'acme',
    feature: 'calls',
    value: 5,
    idempotency_key: 'k1',
  });
  await app.json('PUT', '/v1/customers/blocked', {});
  await app.json('POST', '/v1/customers/blocked/subscriptions', { plan: 'pro' });
  await app.json('POST', '/v1/customers/blocked/overrides', {
    feature: 'sso',
    enabled: false,
    reason: 'test',
  });
  http = await serveOverHttp(app.runtime);
  base = http.base;
});
afterAll(async () => {
  await http?.close();
  await app?.close();
});

async function overHttp(body: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/v1/check`, {
    method: 'POST',
    headers: { authorization: `Bearer ${app.checkKey}`, 'content-type': 'application/json', ...headers },
    body,
  });
  const text = await res.text();
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    requestId: res.headers.get('x-request-id'),
    body: JSON.parse(text) as Record<string, unknown>,
  };
}

async function inProcess(body: string, headers: Record<string, string> = {}) {
  const res = await app.request('POST', '/v1/check', body, { key: app.checkKey, headers });
  return {
    status: res.status,
    type: res.headers.get('content-type'),
    body: (await res.json()) as Record<string, unknown>,
  };
}

const strip = (b: Record<string, unknown>) => ({ ...b, request_id: undefined });

describe('POST /v1/check over node:http', () => {
  const bodies = [
    { customer_id: 'acme', feature: 'sso' },
    { customer_id: 'acme', feature: 'theme', quantity: 2 },
    { customer_id: 'acme', feature: 'calls' },
    { customer_id: 'blocked', feature: 'sso' },
    { customer_id: 'acme', feature: 'sso', context: { device_compliant: true } },
    { customer_id: 'nobody', feature: 'sso' },
    { customer_id: 'acme', feature: 'nope' },
    { customer_id: 'acme', feature: 'sso', quantity: -1 },
    { customer_id: 'acme', feature: 'sso', extra: 1 },
    { customer_id: '', feature: 'sso' },
    { customer_id: 'acme', feature: 'sso', context: { nested: { a: 1 } } },
  ];

  it.each(bodies.map((b) => [JSON.stringify(b)]))('answers %s exactly as the app does', async (body) => {
    // Twice: the first call warms the key cache, so the second can take the fast path.
    await overHttp(body);
    const [fast, slow] = [await overHttp(body), await inProcess(body)];
    expect(fast.status).toBe(slow.status);
    expect(fast.type).toBe(slow.type);
    expect(strip(fast.body)).toEqual(strip(slow.body));
    expect(fast.requestId).toMatch(/^req_/);
  });

  it('names overage_used and disabled_by_override on the fast path too', async () => {
    const calls = JSON.stringify({ customer_id: 'acme', feature: 'calls' });
    await overHttp(calls);
    expect((await overHttp(calls)).body).toMatchObject({ used: 5, overage_used: 3 });
    expect((await overHttp(calls)).body).not.toHaveProperty('overage');
    const sso = JSON.stringify({ customer_id: 'blocked', feature: 'sso' });
    expect((await overHttp(sso)).body).toMatchObject({ allowed: false, reason: 'disabled_by_override' });
  });

  it('takes the fast path for well-formed requests', async () => {
    const served = async () =>
      (await app.runtime.deps.metrics.fastPath.get()).values.find(
        (v) => v.labels.outcome === 'served' && v.labels.route === '/v1/check',
      )?.value ?? 0;
    const before = await served();
    for (let i = 0; i < 5; i++) await overHttp(JSON.stringify({ customer_id: 'acme', feature: 'sso' }));
    expect((await served()) - before).toBe(5);
  });

  it('answers a burst with a key the cache cannot vouch for on the fast path, after one look-up', async () => {
    // A key this process has not seen: the same case as one whose entry lapsed after a quiet spell.
    const fresh = await app.json<{ id: string; secret: string }>('POST', '/v1/api-keys', {
      name: 'burst',
      scopes: ['check'],
    });
    const outcome = async (which: string) =>
      (await app.runtime.deps.metrics.fastPath.get()).values.find(
        (v) => v.labels.outcome === which && v.labels.route === '/v1/check',
      )?.value ?? 0;
    const [served, handed] = [await outcome('served'), await outcome('handed_over')];
    const body = JSON.stringify({ customer_id: 'acme', feature: 'sso' });
    const burst = await Promise.all(
      Array.from({ length: 20 }, () => overHttp(body, { authorization: `Bearer ${fresh.body.secret}` })),
    );
    expect(burst.map((r) => [r.status, r.body.allowed])).toEqual(Array(20).fill([200, true]));
    expect((await outcome('served')) - served).toBe(20);
    expect((await outcome('handed_over')) - handed).toBe(0);

    // Revoked (the cache forgets it on this node at once): the app answers, with 401.
    expect((await app.json('DELETE', `/v1/api-keys/${fresh.body.id}`)).status).toBeLessThan(300);
    app.runtime.resolver.forget();
    const revoked = await overHttp(body, { authorization: `Bearer ${fresh.body.secret}` });
    expect(revoked.status).toBe(401);
    expect((await outcome('handed_over')) - handed).toBe(1);
  });

  it('hands the request to the app when the key cannot be looked up, without an unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    // The key store fails at once, before the body has even arrived.
    const failing = {
      peek: () => undefined,
      resolve: () => Promise.reject(new Error('database unavailable')),
    } as unknown as ApiKeyResolver;
    const handedOver: string[] = [];
    const fast = createFastPath(app.runtime.deps, failing, [checkFastRoute], (_req, res, body) => {
      handedOver.push(body?.toString() ?? '');
      res.writeHead(503, { 'content-type': 'application/problem+json' }).end('{}');
    });
    const server = createServer((req, res) => {
      if (!fast(req, res)) res.writeHead(500).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const body = JSON.stringify({ customer_id: 'acme', feature: 'sso' });
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/check`, {
        method: 'POST',
        headers: { authorization: `Bearer ${app.checkKey}`, 'content-type': 'application/json' },
        body,
      });
      expect(res.status).toBe(503);
      expect(handedOver).toEqual([body]);
      await new Promise((r) => setTimeout(r, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      await new Promise((r) => server.close(r));
    }
  });

  it('hands malformed JSON, idempotent requests, request ids and bad keys to the app', async () => {
    expect((await overHttp('{"customer_id":')).body).toMatchObject({ code: 'malformed_json' });
    const idem = await overHttp(JSON.stringify({ customer_id: 'acme', feature: 'sso' }), {
      'idempotency-key': 'k1',
    });
    expect(idem.status).toBe(200);
    const withId = await overHttp(JSON.stringify({ customer_id: 'acme', feature: 'sso' }), {
      'x-request-id': 'mine-1',
    });
    expect(withId.requestId).toBe('mine-1');
    const badKey = await overHttp(JSON.stringify({ customer_id: 'acme', feature: 'sso' }), {
      authorization: 'Bearer sk_test_notAKeyAtAll000000',
    });
    expect(badKey.status).toBe(401);
    const text = await overHttp(JSON.stringify({ customer_id: 'acme', feature: 'sso' }), {
      'content-type': 'text/plain',
    });
    expect(text.status).toBe(415);
  });

  it('serves every other route through the app', async () => {
    const res = await fetch(`${base}/v1/customers/acme/entitlements`, {
      headers: { authorization: `Bearer ${app.checkKey}` },
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { customer_id: string }).customer_id).toBe('acme');
  });
});

describe('parseCheck', () => {
  it('accepts exactly what the schema accepts', () => {
    expect(parseCheck(Buffer.from('{"customer_id":"a","feature":"b"}'))).toEqual({
      customer_id: 'a',
      feature: 'b',
    });
    expect(parseCheck(Buffer.from('{"customer_id":"a","feature":"b","quantity":0}'))).toBeNull();
    expect(parseCheck(Buffer.from('{"customer_id":"a","feature":"b","context":{"x":[1]}}'))).toBeNull();
    expect(parseCheck(Buffer.from('[]'))).toBeNull();
    expect(parseCheck(Buffer.from(`{"customer_id":"${'a'.repeat(256)}","feature":"b"}`))).toBeNull();
  });
});
