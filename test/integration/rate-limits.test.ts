import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManualClock } from '../../src/platform/clock.ts';
import { createTestApp, frozenClock, serveOverHttp, type TestApp } from '../helpers/harness.ts';

let app: TestApp;
let clock: ManualClock;
let http: Awaited<ReturnType<typeof serveOverHttp>>;
beforeAll(async () => {
  clock = frozenClock();
  // Keys cached as in production, so the fast paths take checks and usage at once.
  app = await createTestApp({ clock, config: { apiKeyCacheSeconds: 5 } });
  await app.json('POST', '/v1/features', { key: 'calls', name: 'Calls', type: 'metered' });
  await app.json('POST', '/v1/plans', {
    key: 'pro',
    name: 'Pro',
    entitlements: [{ feature: 'calls', limit: 1000, reset: 'month', overage: 'deny' }],
  });
  await app.json('PUT', '/v1/customers/acme', { name: 'Acme' });
  await app.json('POST', '/v1/customers/acme/subscriptions', { plan: 'pro' });
  http = await serveOverHttp(app.runtime);
});
afterAll(async () => {
  await http?.close();
  await app?.close();
});

async function keyWith(scopes: string[], limit: number | null | undefined) {
  const res = await app.json<{ id: string; secret: string; rate_limit_per_second: number | null }>(
    'POST',
    '/v1/api-keys',
    { name: 'limited', scopes, ...(limit !== undefined ? { rate_limit_per_second: limit } : {}) },
  );
  expect(res.status).toBe(201);
  return res.body;
}

async function auditCount(): Promise<number> {
  const row = await app.runtime.deps.db
    .selectFrom('audit_events')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

const overHttp = (path: string, key: string, body: string) =>
  fetch(`${http.base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body,
  });

const fastPathServed = async (route: string) => {
  const metrics = await app.runtime.deps.metrics.registry.metrics();
  const line = metrics.split('\n').find((l) => l.includes(`route="${route}"`) && l.includes('served'));
  return Number(line?.split(' ').at(-1) ?? 0);
};

describe('per-key rate limits', () => {
  it('sends RateLimit headers, refuses the request past the limit with 429 and Retry-After, and refills', async () => {
    const key = await keyWith(['admin'], 3);
    expect(key.rate_limit_per_second).toBe(3);
    for (let i = 0; i < 3; i++) {
      const res = await app.request('GET', '/v1/features', undefined, { key: key.secret });
      expect(res.status).toBe(200);
      expect(res.headers.get('ratelimit-limit')).toBe('3');
      expect(res.headers.get('ratelimit-remaining')).toBe(String(2 - i));
      expect(res.headers.get('ratelimit-policy')).toBe('3;w=1');
      expect(Number(res.headers.get('ratelimit-reset'))).toBeGreaterThanOrEqual(1);
    }
    const before = await auditCount();
    const refused = await app.request(
      'POST',
      '/v1/features',
      { key: 'refused', name: 'Refused', type: 'boolean' },
      { key: key.secret },
    );
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(refused.headers.get('ratelimit-remaining')).toBe('0');
    expect(await refused.json()).toMatchObject({ status: 429, code: 'rate_limited' });
    expect(await auditCount()).toBe(before);
    expect((await app.json('GET', '/v1/features/refused')).status).toBe(404);

    // Refused requests take nothing: a third of a second later one request fits again.
    clock.advance(340);
    expect((await app.request('GET', '/v1/features', undefined, { key: key.secret })).status).toBe(200);
    expect((await app.request('GET', '/v1/features', undefined, { key: key.secret })).status).toBe(429);
    clock.advance(1000);
    const full = await app.request('GET', '/v1/features', undefined, { key: key.secret });
    expect(full.status).toBe(200);
    expect(full.headers.get('ratelimit-remaining')).toBe('2');
    // Errors carry the headers too.
    const missing = await app.request('GET', '/v1/features/nope', undefined, { key: key.secret });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('ratelimit-limit')).toBe('3');
  });

  it('sends no RateLimit headers for an unlimited key', async () => {
    const res = await app.request('GET', '/v1/features');
    expect(res.status).toBe(200);
    expect(res.headers.get('ratelimit-limit')).toBeNull();
  });

  it('changes a key’s limit with PATCH /v1/api-keys/{id}, audited, validated and hidden from other environments', async () => {
    const key = await keyWith(['admin'], undefined);
    expect(key.rate_limit_per_second).toBeNull();
    const patched = await app.json('PATCH', `/v1/api-keys/${key.id}`, { rate_limit_per_second: 1 });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ id: key.id, rate_limit_per_second: 1, name: 'limited' });
    const events = await app.json<{ data: { action: string; target_id?: string }[] }>(
      'GET',
      '/v1/audit-events?action=api_key.updated',
    );
    expect(events.body.data.length).toBeGreaterThan(0);

    clock.advance(5000);
    expect((await app.request('GET', '/v1/features', undefined, { key: key.secret })).status).toBe(200);
    expect((await app.request('GET', '/v1/features', undefined, { key: key.secret })).status).toBe(429);
    await app.json('PATCH', `/v1/api-keys/${key.id}`, { rate_limit_per_second: 0 });
    for (let i = 0; i < 5; i++)
      expect((await app.request('GET', '/v1/features', undefined, { key: key.secret })).status).toBe(200);

    const before = await auditCount();
    for (const body of [{}, { rate_limit_per_second: -1 }, { rate_limit_per_second: 1.5 }, { extra: 1 }]) {
      const bad = await app.json<{ errors: { path: string }[] }>('PATCH', `/v1/api-keys/${key.id}`, body);
      expect(bad.status, JSON.stringify(body)).toBe(400);
      expect(bad.headers.get('content-type')).toContain('application/problem+json');
    }
    const hidden = await app.json(
      'PATCH',
      `/v1/api-keys/${key.id}`,
      { name: 'x' },
      { key: app.liveAdminKey },
    );
    expect(hidden.status).toBe(404);
    const scoped = await app.json('PATCH', `/v1/api-keys/${key.id}`, { name: 'x' }, { key: app.checkKey });
    expect(scoped.status).toBe(403);
    expect(await auditCount()).toBe(before);
    const bad = await app.json<{ errors: { path: string }[] }>('POST', '/v1/api-keys', {
      name: 'bad',
      scopes: ['check'],
      rate_limit_per_second: 'many',
    });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0]?.path).toBe('rate_limit_per_second');
  });

  it('follows TESSERA_RATE_LIMIT_DEFAULT for keys without a limit of their own; 0 is unlimited', async () => {
    const other = await createTestApp({ clock, config: { rateLimitDefault: 2 } });
    try {
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await other.request('GET', '/v1/features')).status);
      expect(statuses).toEqual([200, 200, 429]);
      const unlimited = await other.json<{ secret: string }>('POST', '/v1/api-keys', {
        name: 'unlimited',
        scopes: ['admin'],
        rate_limit_per_second: 0,
      });
      // That POST was refused too: the admin key is still over its limit.
      expect(unlimited.status).toBe(429);
      clock.advance(1000);
      const created = await other.json<{ secret: string }>('POST', '/v1/api-keys', {
        name: 'unlimited',
        scopes: ['admin'],
        rate_limit_per_second: 0,
      });
      expect(created.status).toBe(201);
      for (let i = 0; i < 5; i++)
        expect(
          (await other.request('GET', '/v1/features', undefined, { key: created.body.secret })).status,
        ).toBe(200);
    } finally {
      await other.close();
    }
  });

  it('limits the node:http fast paths of check and usage, sharing the key’s bucket with the app', async () => {
    clock.advance(5000);
    const key = await keyWith(['check'], 2);
    const check = JSON.stringify({ customer_id: 'acme', feature: 'calls' });
    // Seen once by the app, so the fast path's cache knows the key.
    expect(
      (await app.request('GET', '/v1/customers/acme/entitlements', undefined, { key: key.secret })).status,
    ).toBe(200);
    clock.advance(1000);
    const served = await fastPathServed('/v1/check');
    const first = await overHttp('/v1/check', key.secret, check);
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit-limit')).toBe('2');
    expect(first.headers.get('ratelimit-remaining')).toBe('1');
    expect(await fastPathServed('/v1/check')).toBe(served + 1);
    const usage = await overHttp(
      '/v1/usage',
      key.secret,
      JSON.stringify({ customer_id: 'acme', feature: 'calls', idempotency_key: 'rl-1' }),
    );
    expect(usage.status).toBe(200);
    expect(usage.headers.get('ratelimit-remaining')).toBe('0');
    const refused = await overHttp('/v1/check', key.secret, check);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toContain('application/problem+json');
    expect(refused.headers.get('retry-after')).toBe('1');
    expect(await refused.json()).toMatchObject({ code: 'rate_limited' });
    const refusedUsage = await overHttp(
      '/v1/usage',
      key.secret,
      JSON.stringify({ customer_id: 'acme', feature: 'calls', idempotency_key: 'rl-2' }),
    );
    expect(refusedUsage.status).toBe(429);
    const used = await app.json<{ used: number }>('POST', '/v1/check', {
      customer_id: 'acme',
      feature: 'calls',
    });
    expect(used.body.used).toBe(1);

    // A body the fast path hands to the app (invalid) is charged once, not twice.
    clock.advance(1000);
    const invalid = await overHttp('/v1/check', key.secret, JSON.stringify({ customer_id: 'acme' }));
    expect(invalid.status).toBe(400);
    expect(invalid.headers.get('ratelimit-remaining')).toBe('1');
    expect((await overHttp('/v1/check', key.secret, check)).status).toBe(200);
    expect((await overHttp('/v1/check', key.secret, check)).status).toBe(429);
  });

  it('charges a key the fast path has to look up first, before answering it there', async () => {
    clock.advance(5000);
    const key = await keyWith(['check'], 1);
    const check = JSON.stringify({ customer_id: 'acme', feature: 'calls' });
    const served = await fastPathServed('/v1/check');
    const first = await overHttp('/v1/check', key.secret, check);
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit-remaining')).toBe('0');
    expect(await fastPathServed('/v1/check')).toBe(served + 1);
    const second = await overHttp('/v1/check', key.secret, check);
    expect(second.status).toBe(429);
    expect(second.headers.get('retry-after')).toBe('1');
  });
});
