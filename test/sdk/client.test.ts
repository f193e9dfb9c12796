import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTessera, TesseraError } from '../../sdk/src/index.ts';
import { createTestApp, serveOverHttp, services, type TestApp } from '../helpers/harness.ts';

/** The SDK against the real app over HTTP (fast paths included). */

let app: TestApp;
let http: Awaited<ReturnType<typeof serveOverHttp>>;

beforeAll(async () => {
  app = await createTestApp({ redis: services.redis });
  await app.json('POST', '/v1/features', { key: 'reports', name: 'Reports', type: 'boolean' });
  await app.json('POST', '/v1/features', { key: 'calls', name: 'Calls', type: 'metered' });
  await app.json('POST', '/v1/features', { key: 'theme', name: 'Theme', type: 'config' });
  await app.json('POST', '/v1/plans', {
    key: 'pro',
    name: 'Pro',
    entitlements: [
      { feature: 'reports' },
      { feature: 'calls', limit: 10, reset: 'month', overage: 'deny' },
      { feature: 'theme', value: 'dark' },
    ],
  });
  for (const id of ['acme', 'snap', 'quota']) {
    await app.json('PUT', `/v1/customers/${id}`, { name: id });
    await app.json('POST', `/v1/customers/${id}/subscriptions`, { plan: 'pro' });
  }
  http = await serveOverHttp(app.runtime);
});
afterAll(async () => {
  await http?.close();
  await app?.close();
});

const client = (extra: Partial<Parameters<typeof createTessera>[0]> = {}) =>
  createTessera({ baseUrl: http.base, apiKey: app.checkKey, backoffMs: 5, ...extra });

/** A closed port: listen, note the port, close. */
async function closedPort(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}`;
}

/** Answers 503 to the first `failures` requests, then forwards to the real server. */
async function flakyProxy(failures: number) {
  const seen: { method: string; url: string; body: string; at: number }[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method ?? '', url: req.url ?? '', body, at: performance.now() });
      if (seen.length <= failures) {
        res.writeHead(503, { 'content-type': 'application/problem+json' });
        res.end(JSON.stringify({ status: 503, title: 'Unavailable', code: 'unavailable' }));
        return;
      }
      const target = new URL(req.url ?? '/', http.base);
      const fwd = httpRequest(target, { method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      fwd.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

describe('remote calls', () => {
  it('checks access, config values and quotas', async () => {
    const t = client();
    const reports = await t.check({ customer_id: 'acme', feature: 'reports' });
    expect(reports).toMatchObject({ allowed: true, reason: 'granted', source: 'server', stale: false });
    const theme = await t.check({ customer_id: 'acme', feature: 'theme' });
    expect(theme.value).toBe('dark');
    const tooMany = await t.check({ customer_id: 'acme', feature: 'calls', quantity: 11 });
    expect(tooMany).toMatchObject({ allowed: false, reason: 'limit_exceeded' });
    const nobody = await t.check({ customer_id: 'nobody', feature: 'reports' });
    expect(nobody).toMatchObject({ allowed: false, reason: 'unknown_customer' });
  });

  it('lists entitlements', async () => {
    const list = await client().entitlements('acme');
    expect(list.customer_id).toBe('acme');
    expect(list.entitlements.map((e) => e.feature).sort()).toEqual(['calls', 'reports', 'theme']);
  });

  it('tracks usage with an idempotency key of its own, retrying a 503 with backoff and counting once', async () => {
    const proxy = await flakyProxy(2);
    try {
      const t = createTessera({ baseUrl: proxy.base, apiKey: app.checkKey, backoffMs: 20 });
      const result = await t.track({ customer_id: 'quota', feature: 'calls', value: 2 });
      expect(result).toMatchObject({ accepted: true, used: 2, remaining: 8 });
      expect(proxy.seen).toHaveLength(3);
      const keys = proxy.seen.map((s) => JSON.parse(s.body).idempotency_key as string);
      expect(keys[0]).toMatch(/^[0-9a-f-]{36}$/);
      expect(new Set(keys).size).toBe(1);
      // Backoff: at least ~half of 20 ms, then ~half of 40 ms.
      expect(proxy.seen[1]!.at - proxy.seen[0]!.at).toBeGreaterThanOrEqual(9);
      expect(proxy.seen[2]!.at - proxy.seen[1]!.at).toBeGreaterThanOrEqual(19);
      const again = await t.track({
        customer_id: 'quota',
        feature: 'calls',
        value: 2,
        idempotency_key: keys[0]!,
      });
      expect(again.used).toBe(2);
    } finally {
      await proxy.close();
    }
  });

  it('gives up after its retries with the last problem', async () => {
    const proxy = await flakyProxy(100);
    try {
      const t = createTessera({ baseUrl: proxy.base, apiKey: app.checkKey, backoffMs: 1, retries: 2 });
      const err = await t.track({ customer_id: 'quota', feature: 'calls' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TesseraError);
      expect((err as TesseraError).status).toBe(503);
      expect(proxy.seen).toHaveLength(3);
    } finally {
      await proxy.close();
    }
  });

  it('does not retry a 4xx and reports its problem', async () => {
    const err = await client()
      .track({ customer_id: 'acme', feature: '' })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TesseraError);
    expect((err as TesseraError).status).toBe(400);
    expect((err as TesseraError).code).toBeTruthy();
    expect((err as TesseraError).problem?.request_id).toBeTruthy();
  });

  it('reserves, commits and releases', async () => {
    const t = client();
    const held = await t.reserve({ customer_id: 'acme', feature: 'calls', amount: 3, ttl_seconds: 60 });
    expect(held.status).toBe('held');
    const committed = await t.commit(held.id, 2);
    expect(committed).toMatchObject({ status: 'committed', committed_amount: 2 });
    const other = await t.reserve({ customer_id: 'acme', feature: 'calls', amount: 1, ttl_seconds: 60 });
    expect((await t.release(other.id)).status).toBe('released');
  });
});

describe('local mode from a snapshot', () => {
  it('answers from the snapshot, and past its TTL answers stale while it refreshes in the background', async () => {
    let now = 1_000_000;
    const t = client({ mode: 'local', snapshotTtlMs: 1000, now: () => now });
    const first = await t.check({ customer_id: 'snap', feature: 'calls', quantity: 4 });
    expect(first).toMatchObject({ allowed: true, source: 'snapshot', stale: false, remaining: 10 });

    await app.json('POST', '/v1/usage', {
      customer_id: 'snap',
      feature: 'calls',
      value: 8,
      idempotency_key: 's1',
    });
    const cached = await t.check({ customer_id: 'snap', feature: 'calls', quantity: 4 });
    expect(cached).toMatchObject({ allowed: true, stale: false, remaining: 10 });

    now += 1000;
    const stale = await t.check({ customer_id: 'snap', feature: 'calls', quantity: 4 });
    expect(stale).toMatchObject({ allowed: true, stale: true, remaining: 10 });
    await expect
      .poll(async () => (await t.check({ customer_id: 'snap', feature: 'calls', quantity: 4 })).remaining)
      .toBe(2);
    const fresh = await t.check({ customer_id: 'snap', feature: 'calls', quantity: 4 });
    expect(fresh).toMatchObject({ allowed: false, reason: 'limit_exceeded', stale: false });
  });

  it('keeps answering from an expired snapshot, marked stale, when Tessera goes away', async () => {
    const proxy = await flakyProxy(0);
    let now = 0;
    const t = createTessera({
      baseUrl: proxy.base,
      apiKey: app.checkKey,
      mode: 'local',
      snapshotTtlMs: 10,
      retries: 0,
      now: () => now,
    });
    expect((await t.check({ customer_id: 'acme', feature: 'reports' })).stale).toBe(false);
    await proxy.close();
    now += 100;
    const decision = await t.check({ customer_id: 'acme', feature: 'reports' });
    expect(decision).toMatchObject({ allowed: true, stale: true, source: 'snapshot' });
  });
});

describe('Tessera unreachable', () => {
  it('fails closed by default and open when asked, marking the answer stale', async () => {
    const base = await closedPort();
    const closed = createTessera({ baseUrl: base, apiKey: 'sk_test_x', retries: 1, backoffMs: 1 });
    expect(await closed.check({ customer_id: 'acme', feature: 'reports' })).toMatchObject({
      allowed: false,
      reason: 'unreachable',
      source: 'fallback',
      stale: true,
    });
    const open = createTessera({
      baseUrl: base,
      apiKey: 'sk_test_x',
      retries: 1,
      backoffMs: 1,
      failMode: 'open',
    });
    expect(await open.check({ customer_id: 'acme', feature: 'reports' })).toMatchObject({
      allowed: true,
      reason: 'unreachable',
      stale: true,
    });
    const local = createTessera({
      baseUrl: base,
      apiKey: 'sk_test_x',
      retries: 0,
      mode: 'local',
      failMode: 'open',
    });
    expect(await local.check({ customer_id: 'acme', feature: 'reports' })).toMatchObject({
      allowed: true,
      stale: true,
    });
    const err = await closed.track({ customer_id: 'acme', feature: 'calls' }).catch((e: unknown) => e);
    expect((err as TesseraError).status).toBe(0);
  });
});
