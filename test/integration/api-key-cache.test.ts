import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyResolver } from '../../src/platform/auth.ts';
import { createTestApp, type TestApp } from '../helpers/harness.ts';

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

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The in-process key cache the fast path and the app share (src/platform/auth.ts). */
describe('API key cache', () => {
  let app: TestApp;
  let secret: string;
  let keyId: string;
  beforeAll(async () => {
    app = await createTestApp();
    const created = await app.json<{ id: string; secret: string }>('POST', '/v1/api-keys', {
      name: 'cached',
      scopes: ['check'],
    });
    secret = created.body.secret;
    keyId = created.body.id;
  });
  afterAll(async () => {
    await app?.close();
  });

  const resolver = (ttlSeconds: number) => {
    const counter = new QueryCounter();
    return { counter, resolver: new ApiKeyResolver(app.runtime.deps.db.withPlugin(counter), ttlSeconds) };
  };

  it('answers concurrent look-ups of one secret with one query', async () => {
    const { counter, resolver: keys } = resolver(5);
    const answers = await Promise.all(Array.from({ length: 20 }, () => keys.resolve(secret)));
    expect(answers.every((k) => k?.id === keyId)).toBe(true);
    expect(counter.count).toBe(1);
    expect(keys.peek(secret)?.id).toBe(keyId);
  });

  it('refreshes a key in use before its entry ends, so the entry never lapses under traffic', async () => {
    const { counter, resolver: keys } = resolver(1);
    await keys.resolve(secret);
    expect(counter.count).toBe(1);
    // Past the refresh point (60% of 1 s) a peek still answers from the cache and looks it up again.
    await sleep(700);
    expect(keys.peek(secret)?.id).toBe(keyId);
    await sleep(100);
    expect(counter.count).toBe(2);
    // After the first entry's end the refreshed one answers without any IO.
    await sleep(400);
    expect(keys.peek(secret)?.id).toBe(keyId);
  });

  it('still stops honouring a revoked key within the cache time', async () => {
    const other = await app.json<{ id: string; secret: string }>('POST', '/v1/api-keys', {
      name: 'revoked soon',
      scopes: ['check'],
    });
    const { resolver: keys } = resolver(1);
    expect((await keys.resolve(other.body.secret))?.id).toBe(other.body.id);
    expect((await app.json('DELETE', `/v1/api-keys/${other.body.id}`)).status).toBe(200);
    const started = Date.now();
    // Traffic keeps peeking; the background refresh finds the revocation.
    while (keys.peek(other.body.secret)) {
      expect(Date.now() - started).toBeLessThan(1100);
      await sleep(20);
    }
    expect(await keys.resolve(other.body.secret)).toBeNull();
  });

  it('does not let a look-up that raced forget() put its answer back', async () => {
    const { resolver: keys } = resolver(5);
    const pending = keys.resolve(secret);
    keys.forget();
    expect((await pending)?.id).toBe(keyId);
    expect(keys.peek(secret)).toBeUndefined();
  });
});
