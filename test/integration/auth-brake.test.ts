import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyResolver } from '../../src/platform/auth.ts';
import type { ManualClock } from '../../src/platform/clock.ts';
import { createTestApp, frozenClock, serveOverHttp, type TestApp } from '../helpers/harness.ts';

/** Counts the queries a Kysely instance runs. */
class QueryCounter implements KyselyPlugin {
  count = 0;
  transformQuery(args: PluginTransformQueryArgs) {
    this.count += 1;
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs) {
    return args.result;
  }
}

const LIMIT = 5;
let app: TestApp;
let clock: ManualClock;
beforeAll(async () => {
  clock = frozenClock();
  app = await createTestApp({
    clock,
    config: { authFailureLimit: LIMIT, authFailureWindowSeconds: 60, apiKeyCacheSeconds: 5 },
  });
});
afterAll(async () => app?.close());

/** A request from a given client address, as @hono/node-server would hand it to the app. */
function from(address: string, key: string | null, headers: Record<string, string> = {}) {
  return app.runtime.app.request(
    '/v1/features',
    { headers: { ...headers, ...(key ? { authorization: `Bearer ${key}` } : {}) } },
    { incoming: { socket: { remoteAddress: address } } },
  );
}
const unknownKey = (i: number) => `sk_test_unknown${String(i).padStart(12, '0')}`;

describe('authentication brake', () => {
  it('answers 429 with Retry-After after too many failures from one address, and lets it try again later', async () => {
    // A key this node has just seen stays usable from a braked address (no look-up needed).
    expect((await from('203.0.113.1', app.adminKey)).status).toBe(200);
    for (let i = 0; i < LIMIT; i++) expect((await from('203.0.113.1', unknownKey(i))).status).toBe(401);
    const braked = await from('203.0.113.1', unknownKey(99));
    expect(braked.status).toBe(429);
    expect(braked.headers.get('content-type')).toContain('application/problem+json');
    expect(Number(braked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(braked.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    expect(await braked.json()).toMatchObject({ status: 429, code: 'too_many_auth_failures' });
    // Without any key too.
    expect((await from('203.0.113.1', null)).status).toBe(429);
    // Another address is not braked.
    expect((await from('203.0.113.2', unknownKey(100))).status).toBe(401);
    // The valid key the cache knows is still served.
    expect((await from('203.0.113.1', app.adminKey)).status).toBe(200);
    clock.advance(61_000);
    expect((await from('203.0.113.1', unknownKey(101))).status).toBe(401);
  });

  it('takes X-Forwarded-For only when a proxy is trusted', async () => {
    for (let i = 0; i < LIMIT; i++)
      await from('198.51.100.1', unknownKey(200 + i), { 'x-forwarded-for': `192.0.2.${i}` });
    // Untrusted: every failure counted against the socket address.
    expect((await from('198.51.100.1', unknownKey(300), { 'x-forwarded-for': '192.0.2.77' })).status).toBe(
      429,
    );
    const proxied = await createTestApp({
      clock,
      config: { authFailureLimit: 2, authFailureWindowSeconds: 60, trustProxy: true },
    });
    try {
      const via = (client: string, i: number) =>
        proxied.runtime.app.request(
          '/v1/features',
          { headers: { authorization: `Bearer ${unknownKey(i)}`, 'x-forwarded-for': `10.9.9.9, ${client}` } },
          { incoming: { socket: { remoteAddress: '10.0.0.1' } } },
        );
      expect((await via('192.0.2.1', 1)).status).toBe(401);
      expect((await via('192.0.2.1', 2)).status).toBe(401);
      expect((await via('192.0.2.1', 3)).status).toBe(429);
      expect((await via('192.0.2.2', 4)).status).toBe(401);
    } finally {
      await proxied.close();
    }
  });
});

describe('authentication brake on the node:http fast path', () => {
  it('looks up no key for a braked address', async () => {
    const braked = await createTestApp({
      clock,
      config: { authFailureLimit: 2, authFailureWindowSeconds: 60, apiKeyCacheSeconds: 5 },
    });
    const http = await serveOverHttp(braked.runtime);
    try {
      const resolver = braked.runtime.resolver;
      const resolve = resolver.resolve.bind(resolver);
      let lookUps = 0;
      resolver.resolve = (secret) => {
        lookUps += 1;
        return resolve(secret);
      };
      const check = (i: number) =>
        fetch(`${http.base}/v1/check`, {
          method: 'POST',
          headers: { authorization: `Bearer ${unknownKey(700 + i)}`, 'content-type': 'application/json' },
          body: JSON.stringify({ customer_id: 'c', feature: 'f' }),
        });
      expect((await check(1)).status).toBe(401);
      expect((await check(2)).status).toBe(401);
      const before = lookUps;
      const res = await check(3);
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).not.toBeNull();
      expect(lookUps).toBe(before);
    } finally {
      await http.close();
      await braked.close();
    }
  });
});

describe('API key resolver', () => {
  const resolver = () => {
    const counter = new QueryCounter();
    const keys = new ApiKeyResolver(app.runtime.deps.db.withPlugin(counter), 5, { clock, maxEntries: 3 });
    return { counter, keys };
  };

  it('never queries for a malformed key', async () => {
    const { counter, keys } = resolver();
    expect(await keys.resolve('sk_test_short')).toBeNull();
    expect(await keys.resolve('not-a-key-at-all')).toBeNull();
    expect(keys.peek('sk_live_$$$$$$$$$$$$$$$$$$$$')).toBeNull();
    expect(counter.count).toBe(0);
  });

  it('remembers an unknown key briefly, however short the key cache is', async () => {
    const counter = new QueryCounter();
    const keys = new ApiKeyResolver(app.runtime.deps.db.withPlugin(counter), 0, { clock });
    expect(await keys.resolve(unknownKey(500))).toBeNull();
    expect(await keys.resolve(unknownKey(500))).toBeNull();
    expect(counter.count).toBe(1);
    clock.advance(60_000);
    expect(await keys.resolve(unknownKey(500))).toBeNull();
    expect(counter.count).toBe(2);
  });

  it('evicts the least recently used entry instead of emptying the cache', async () => {
    const { counter, keys } = resolver();
    await keys.resolve(app.adminKey);
    for (let i = 0; i < 3; i++) {
      await keys.resolve(unknownKey(600 + i));
      // The admin key stays in use.
      expect(keys.peek(app.adminKey)).not.toBeUndefined();
    }
    expect(counter.count).toBe(4);
    expect(keys.peek(app.adminKey)?.environment).toBe('test');
    expect(keys.peek(unknownKey(600))).toBeUndefined();
  });

  it('lets entries lapse by the injected clock', async () => {
    const { counter, keys } = resolver();
    await keys.resolve(app.adminKey);
    expect(keys.peek(app.adminKey)).not.toBeUndefined();
    clock.advance(5_001);
    expect(keys.peek(app.adminKey)).toBeUndefined();
    expect(counter.count).toBe(1);
  });
});
