import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerMatches, secretsEqual } from '../../src/platform/response-headers.ts';
import { createTestApp, serveOverHttp, type TestApp } from '../helpers/harness.ts';

const HSTS = 31_536_000;
let app: TestApp;
let http: Awaited<ReturnType<typeof serveOverHttp>>;
beforeAll(async () => {
  app = await createTestApp({
    config: { apiKeyCacheSeconds: 5, maxBodyBytes: 4096, maxQueryLength: 300, hstsSeconds: HSTS },
  });
  await app.json('PUT', '/v1/customers/acme', { name: 'Acme' });
  http = await serveOverHttp(app.runtime);
});
afterAll(async () => {
  await http?.close();
  await app?.close();
});

async function auditCount(): Promise<number> {
  const row = await app.runtime.deps.db
    .selectFrom('audit_events')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

describe('configurable size limits', () => {
  it('refuses a body over TESSERA_MAX_BODY_BYTES with 413, on the app and the fast path', async () => {
    const before = await auditCount();
    const big = { key: 'big', name: 'x'.repeat(5000), type: 'boolean' };
    const res = await app.json('POST', '/v1/features', big);
    expect(res.status).toBe(413);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body).toMatchObject({ code: 'payload_too_large' });
    // The batch fast path's own bound is 1 MiB: the server's smaller one wins.
    const events = Array.from({ length: 100 }, (_, i) => ({
      customer_id: 'acme',
      feature: 'nothing',
      idempotency_key: `big-${i}`,
    }));
    const batch = await fetch(`${http.base}/v1/usage/batch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${app.checkKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ events }),
    });
    expect(batch.status).toBe(413);
    expect(batch.headers.get('content-type')).toContain('application/problem+json');
    expect(await auditCount()).toBe(before);
  });

  it('refuses a query string over TESSERA_MAX_QUERY_LENGTH with 414 problem+json', async () => {
    const res = await app.json('GET', `/v1/audit-events?customer_id=${'a'.repeat(400)}`);
    expect(res.status).toBe(414);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body).toMatchObject({ status: 414, code: 'uri_too_long' });
    expect((await app.json('GET', `/v1/audit-events?customer_id=${'a'.repeat(200)}`)).status).toBe(200);
  });
});

describe('secure headers', () => {
  it('sends nosniff, X-Frame-Options, Referrer-Policy and HSTS (when configured) on app answers', async () => {
    for (const res of [
      await app.request('GET', '/healthz', undefined, { key: null }),
      await app.request('GET', '/v1/features'),
      await app.request('GET', '/v1/features', undefined, { key: null }),
      await app.request('GET', '/nowhere', undefined, { key: null }),
    ]) {
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('x-frame-options')).toBe('DENY');
      expect(res.headers.get('referrer-policy')).toBe('no-referrer');
      expect(res.headers.get('strict-transport-security')).toBe(`max-age=${HSTS}`);
    }
  });

  it('sends HSTS on the fast path too, and no HSTS unless configured', async () => {
    const body = JSON.stringify({ customer_id: 'acme', feature: 'nothing' });
    const check = () =>
      fetch(`${http.base}/v1/check`, {
        method: 'POST',
        headers: { authorization: `Bearer ${app.checkKey}`, 'content-type': 'application/json' },
        body,
      });
    await (await check()).text();
    const res = await check();
    expect(res.status).toBe(200);
    expect(res.headers.get('strict-transport-security')).toBe(`max-age=${HSTS}`);
    const plain = await createTestApp();
    try {
      const r = await plain.request('GET', '/v1/features');
      expect(r.headers.get('strict-transport-security')).toBeNull();
    } finally {
      await plain.close();
    }
  });

  it('serves /docs with a CSP that forbids scripts and framing', async () => {
    const res = await app.request('GET', '/docs', undefined, { key: null });
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy') ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(res.headers.get('x-frame-options')).toBe('DENY');
    expect(await res.text()).not.toContain('<script');
  });

  it('sends Cache-Control: no-store with every secret: API keys, webhook secrets, entitlement tokens', async () => {
    const key = await app.request('POST', '/v1/api-keys', { name: 'k', scopes: ['check'] });
    expect(key.headers.get('cache-control')).toBe('no-store');
    const token = await app.request('POST', '/v1/customers/acme/token', {});
    expect(token.status).toBe(200);
    expect(token.headers.get('cache-control')).toBe('no-store');
    const hook = await app.request('POST', '/v1/webhook-endpoints', { url: 'https://hooks.example.com/t' });
    expect([201, 400, 422]).toContain(hook.status);
    if (hook.status === 201) expect(hook.headers.get('cache-control')).toBe('no-store');
  });
});

describe('constant-time secret comparison', () => {
  it('compares bearer tokens only when the lengths match, and exactly', () => {
    expect(bearerMatches('Bearer abc', 'abc')).toBe(true);
    expect(bearerMatches('bearer abc', 'abc')).toBe(true);
    expect(bearerMatches('Bearer abd', 'abc')).toBe(false);
    expect(bearerMatches('Bearer abcd', 'abc')).toBe(false);
    expect(bearerMatches('Bearer ab', 'abc')).toBe(false);
    expect(bearerMatches(undefined, 'abc')).toBe(false);
    // Multi-byte characters: byte lengths differ although string lengths match.
    expect(bearerMatches('Bearer ab\u00e9', 'abc')).toBe(false);
  });

  it('compares digests, so secrets of any length compare without throwing', () => {
    expect(secretsEqual('', '')).toBe(true);
    expect(secretsEqual('a'.repeat(10_000), 'a'.repeat(10_000))).toBe(true);
    expect(secretsEqual('a'.repeat(10_000), 'a')).toBe(false);
    expect(secretsEqual('sk_test_x', 'sk_test_y')).toBe(false);
  });
});
