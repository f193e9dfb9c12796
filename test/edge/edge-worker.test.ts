import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.ts';
import { createTestApp, serveOverHttp, type TestApp } from '../helpers/harness.ts';

// The worker runs in workerd (Miniflare), against a Tessera server and an origin on 127.0.0.1.
const workerPath = fileURLToPath(new URL('../../edge/src/worker.js', import.meta.url));

let app: TestApp;
let clock: ManualClock;
let tessera: { base: string; close(): Promise<void> };
let origin: Server;
let originBase: string;
let mf: Miniflare;
const extra: Miniflare[] = [];
const servers: Server[] = [];

beforeAll(async () => {
  // Tessera's clock starts at the real time: workerd checks `exp` against its own clock.
  clock = new ManualClock(new Date());
  app = await createTestApp({ clock });
  await app.json('POST', '/v1/features', { key: 'advanced_reports', name: 'Reports', type: 'boolean' });
  await app.json('POST', '/v1/features', { key: 'sso', name: 'SSO', type: 'boolean' });
  await app.json('POST', '/v1/features', { key: 'exports', name: 'Exports', type: 'metered' });
  const plan = await app.json('POST', '/v1/plans', {
    key: 'pro',
    name: 'Pro',
    entitlements: [
      { feature: 'advanced_reports', enabled: true },
      { feature: 'exports', limit: 1, reset: 'month', overage: 'deny' },
    ],
  });
  expect(plan.status, JSON.stringify(plan.body)).toBe(201);
  expect((await app.json('PUT', '/v1/customers/acme', {})).status).toBe(201);
  expect((await app.json('POST', '/v1/customers/acme/subscriptions', { plan: 'pro' })).status).toBe(201);
  const used = await app.json('POST', '/v1/usage', {
    customer_id: 'acme',
    feature: 'exports',
    value: 1,
    idempotency_key: 'e1',
  });
  expect(used.status).toBeLessThan(300);
  tessera = await serveOverHttp(app.runtime);

  origin = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ origin: true, path: req.url, customer: req.headers['x-tessera-customer'] }));
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', () => r()));
  originBase = `http://127.0.0.1:${(origin.address() as AddressInfo).port}`;

  mf = new Miniflare(options());
});

function options() {
  return {
    modules: true,
    scriptPath: workerPath,
    compatibilityDate: '2026-04-20',
    bindings: {
      TESSERA_URL: tessera.base,
      ORIGIN_URL: originBase,
      ROUTES: JSON.stringify([
        { pattern: '/reports/*', feature: 'advanced_reports' },
        { pattern: '/admin/*', feature: 'sso' },
        { pattern: '/exports/*', feature: 'exports' },
      ]),
      ISSUER: 'tessera',
      AUDIENCE: 'test',
      JWKS_MAX_AGE_SECONDS: '1',
      JWKS_REFETCH_SECONDS: '0',
    },
  };
}

afterAll(async () => {
  await mf?.dispose();
  for (const instance of extra) await instance.dispose();
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
  origin?.closeAllConnections();
  if (origin) await new Promise<void>((r) => origin.close(() => r()));
  await tessera?.close();
  await app?.close();
});

async function issue(ttl = 300): Promise<string> {
  const res = await app.json<{ token: string }>(
    'POST',
    '/v1/customers/acme/token',
    { ttl_seconds: ttl },
    { key: app.checkKey },
  );
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.token;
}

/** Another worker instance (its own isolate and JWKS cache) with some bindings changed; disposed after all. */
function worker(changes: Record<string, string>): Miniflare {
  const instance = new Miniflare({ ...options(), bindings: { ...options().bindings, ...changes } });
  extra.push(instance);
  return instance;
}

/** A JWKS relay in front of Tessera that can be turned off (answers 503). */
async function jwksRelay(): Promise<{ base: string; down: boolean; hits: number }> {
  const state = { base: '', down: false, hits: 0 };
  const server = createServer(async (_req, res) => {
    state.hits++;
    if (state.down) {
      res.writeHead(503).end();
      return;
    }
    const upstream = await fetch(`${tessera.base}/.well-known/jwks.json`);
    res.writeHead(upstream.status, { 'content-type': 'application/json' });
    res.end(await upstream.text());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  servers.push(server);
  state.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

async function edge(path: string, headers: Record<string, string> = {}, target: Miniflare = mf) {
  const res = await target.dispatchFetch(`http://edge.example${path}`, { headers });
  const text = await res.text();
  return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : null };
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

describe('edge worker in workerd', () => {
  it('forwards an entitled request to the origin and returns its answer', async () => {
    const token = await issue();
    const res = await edge('/reports/q3?x=1', bearer(token));
    expect(res).toEqual({ status: 200, body: { origin: true, path: '/reports/q3?x=1', customer: 'acme' } });
  });

  it('reads the token from the tessera_token cookie', async () => {
    const token = await issue();
    const res = await edge('/reports', { cookie: `theme=dark; tessera_token=${token}` });
    expect(res.status).toBe(200);
    expect(res.body?.origin).toBe(true);
  });

  it('answers 403 naming the feature the customer lacks, or has used up', async () => {
    const token = await issue();
    const lacking = await edge('/admin/users', bearer(token));
    expect(lacking.status).toBe(403);
    expect(lacking.body).toMatchObject({ code: 'feature_not_entitled', feature: 'sso' });
    const usedUp = await edge('/exports/csv', bearer(token));
    expect(usedUp.status).toBe(403);
    expect(usedUp.body).toMatchObject({ feature: 'exports' });
  });

  it('answers 401 without a token, to garbage and to a tampered token', async () => {
    expect((await edge('/reports/q3')).status).toBe(401);
    expect((await edge('/reports/q3', bearer('garbage'))).status).toBe(401);
    expect((await edge('/reports/q3', bearer('a.b.c'))).status).toBe(401);
    const [h, p, s] = (await issue()).split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
    claims.ent.sso = true;
    const forged = `${h}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${s}`;
    const res = await edge('/admin/users', bearer(forged));
    expect(res.status).toBe(401);
    expect(res.body).toMatchObject({ code: 'token_invalid' });
  });

  it('refuses an expired token', async () => {
    clock.advance(-3600_000);
    const old = await issue(60);
    clock.advance(3600_000);
    expect((await edge('/reports/q3', bearer(old))).status).toBe(401);
  });

  it('requires the configured audience', async () => {
    const live = worker({ AUDIENCE: 'live' });
    expect((await edge('/reports/q3', bearer(await issue()), live)).status).toBe(401);
  });

  it('keeps the keys it holds while Tessera is unreachable, and answers 503 holding none', async () => {
    const jwks = await jwksRelay();
    const relayed = worker({ TESSERA_URL: jwks.base });
    const token = await issue();
    expect((await edge('/reports/q3', bearer(token), relayed)).status).toBe(200);
    jwks.down = true;
    await new Promise((r) => setTimeout(r, 1100));
    expect((await edge('/reports/q3', bearer(token), relayed)).status).toBe(200);
    const cold = worker({ TESSERA_URL: jwks.base });
    const res = await edge('/reports/q3', bearer(token), cold);
    expect(res.status).toBe(503);
    expect(res.body).toMatchObject({ code: 'jwks_unavailable' });
  });

  it('refetches the JWKS on an unknown kid at most once per JWKS_REFETCH_SECONDS', async () => {
    const token = await issue();
    const [h, p, sig] = token.split('.') as [string, string, string];
    const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    const unknownKid = (n: number) =>
      `${Buffer.from(JSON.stringify({ ...header, kid: `nope-${n}` })).toString('base64url')}.${p}.${sig}`;

    const jwks = await jwksRelay();
    const throttled = worker({
      TESSERA_URL: jwks.base,
      JWKS_MAX_AGE_SECONDS: '300',
      JWKS_REFETCH_SECONDS: '60',
    });
    expect((await edge('/reports/q3', bearer(token), throttled)).status).toBe(200);
    for (let n = 0; n < 4; n++)
      expect((await edge('/reports/q3', bearer(unknownKid(n)), throttled)).status).toBe(401);
    expect(jwks.hits).toBe(1);

    const eager = await jwksRelay();
    const unthrottled = worker({ TESSERA_URL: eager.base, JWKS_MAX_AGE_SECONDS: '300' });
    expect((await edge('/reports/q3', bearer(token), unthrottled)).status).toBe(200);
    for (let n = 0; n < 4; n++)
      expect((await edge('/reports/q3', bearer(unknownKid(n)), unthrottled)).status).toBe(401);
    expect(eager.hits).toBe(5);
  });

  it('takes a rotated key after refetching, and refuses a key that left the JWKS', async () => {
    const before = await issue();
    expect((await edge('/reports/q3', bearer(before))).status).toBe(200);
    const rotated = await app.json<{ kid: string; retired_key_leaves_jwks_at: string }>(
      'POST',
      '/v1/signing-keys/rotate',
    );
    expect(rotated.status).toBe(200);
    // A kid the worker has not seen: it refetches the JWKS at once.
    const after = await issue();
    expect((await edge('/reports/q3', bearer(after))).status).toBe(200);
    expect((await edge('/reports/q3', bearer(before))).status).toBe(200);
    // Past the retired key's JWKS life (Tessera's clock), the worker's cache ages out and refetches.
    clock.set(rotated.body.retired_key_leaves_jwks_at);
    clock.advance(1000);
    const jwks = await app.json<{ keys: { kid: string }[] }>('GET', '/.well-known/jwks.json', undefined, {
      key: null,
    });
    expect(jwks.body.keys.map((k) => k.kid)).toEqual([rotated.body.kid]);
    await new Promise((r) => setTimeout(r, 1100));
    expect((await edge('/reports/q3', bearer(before))).status).toBe(401);
  });
});
