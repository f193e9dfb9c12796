import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, serveOverHttp, type TestApp } from '../helpers/harness.ts';

const ORIGIN = 'https://console.example.com';
const METRICS_TOKEN = 'metrics-token-0123456789';

let app: TestApp;
let http: Awaited<ReturnType<typeof serveOverHttp>>;
beforeAll(async () => {
  // Keys cached as in production, so the fast path takes the check.
  app = await createTestApp({ config: { apiKeyCacheSeconds: 5 } });
  http = await serveOverHttp(app.runtime);
});
afterAll(async () => {
  await http?.close();
  await app?.close();
});

const fastPathServed = async () => {
  const metrics = await app.runtime.deps.metrics.registry.metrics();
  const line = metrics.split('\n').find((l) => l.includes('route="/v1/check"') && l.includes('served'));
  return Number(line?.split(' ').at(-1) ?? 0);
};

describe('response headers', () => {
  it('sends X-Content-Type-Options: nosniff on every answer, the fast path’s included', async () => {
    const answers = [
      await app.request('GET', '/healthz', undefined, { key: null }),
      await app.request('GET', '/no/such/route', undefined, { key: null }),
      await app.request('GET', '/v1/features', undefined, { key: null }),
      await app.request('GET', '/v1/features'),
      await app.request('POST', '/v1/features', { key: 1 }),
    ];
    for (const res of answers) expect(res.headers.get('x-content-type-options'), res.url).toBe('nosniff');

    const body = JSON.stringify({ customer_id: 'nobody', feature: 'nothing' });
    const check = () =>
      fetch(`${http.base}/v1/check`, {
        method: 'POST',
        headers: { authorization: `Bearer ${app.checkKey}`, 'content-type': 'application/json' },
        body,
      });
    await (await check()).text();
    const before = await fastPathServed();
    const res = await check();
    expect(res.status).toBe(200);
    expect(await fastPathServed()).toBe(before + 1);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('sends Cache-Control: no-store with a new key’s secret', async () => {
    const res = await app.request('POST', '/v1/api-keys', { name: 'no-store', scopes: ['check'] });
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
  });

  it('sends no CORS headers unless origins are configured', async () => {
    const res = await app.request('OPTIONS', '/v1/features', undefined, {
      key: null,
      headers: { origin: ORIGIN, 'access-control-request-method': 'GET' },
    });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('answers CORS for the configured origins, preflights without a key', async () => {
    const cors = await createTestApp({ config: { corsOrigins: [ORIGIN] } });
    try {
      const preflight = await cors.request('OPTIONS', '/v1/features', undefined, {
        key: null,
        headers: {
          origin: ORIGIN,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type, idempotency-key',
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(ORIGIN);
      expect(preflight.headers.get('access-control-allow-headers')).toContain('idempotency-key');
      const get = await cors.request('GET', '/v1/features', undefined, { headers: { origin: ORIGIN } });
      expect(get.status).toBe(200);
      expect(get.headers.get('access-control-allow-origin')).toBe(ORIGIN);
      const other = await cors.request('GET', '/v1/features', undefined, {
        headers: { origin: 'https://evil.example' },
      });
      expect(other.headers.get('access-control-allow-origin')).toBeNull();
    } finally {
      await cors.close();
    }
  });

  it('guards /metrics with a bearer token when one is configured', async () => {
    const guarded = await createTestApp({ config: { metricsToken: METRICS_TOKEN } });
    try {
      const none = await guarded.json('GET', '/metrics', undefined, { key: null });
      expect(none.status).toBe(401);
      expect(none.headers.get('content-type')).toContain('application/problem+json');
      expect(none.body).toMatchObject({ code: 'unauthorized' });
      const wrong = await guarded.request('GET', '/metrics', undefined, { key: `${METRICS_TOKEN}x` });
      expect(wrong.status).toBe(401);
      const right = await guarded.request('GET', '/metrics', undefined, {
        key: null,
        headers: { authorization: `bearer ${METRICS_TOKEN}` },
      });
      expect(right.status).toBe(200);
      expect(await right.text()).toContain('tessera_http_requests_total');
    } finally {
      await guarded.close();
    }
    // Unset, /metrics stays open.
    expect((await app.request('GET', '/metrics', undefined, { key: null })).status).toBe(200);
  });
});
