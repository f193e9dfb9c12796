import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiKeyResolver } from '../../src/platform/auth.ts';
import { ManualClock } from '../../src/platform/clock.ts';
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

  // Each resolver has a clock of its own: the test moves time, nothing sleeps. Waiting remains only
  // for a look-up's query to come back (vi.waitFor).
  const resolver = (ttlSeconds: number) => {
    const counter = new QueryCounter();
    const clock = new ManualClock('2026-06-01T00:00:00.000Z');
    const keys = new ApiKeyResolver(app.runtime.deps.db.withPlugin(counter), ttlSeconds, { clock });
    return { counter, clock, resolver: keys };
  };

  it('answers concurrent look-ups of one secret with one query', async () => {
    const { counter, resolver: keys } = resolver(5);
    const answers = await Promise.all(Array.from({ length: 20 }, () => keys.resolve(secret)));
    expect(answers.every((k) => k?.id === keyId)).toBe(true);
    expect(counter.count).toBe(1);
    expect(keys.peek(secret)?.id).toBe(keyId);
  });

  it('refreshes a key in use before its entry ends, so the entry never lapses under traffic', async () => {
    const { counter, clock, resolver: keys } = resolver(1);
    await keys.resolve(secret);
    expect(counter.count).toBe(1);
    // Before the refresh point (60% of 1 s) a peek answers from the cache and asks nothing.
    clock.advance(599);
    expect(keys.peek(secret)?.id).toBe(keyId);
    expect(counter.count).toBe(1);
    // Past it, a peek still answers from the cache and looks the key up again in the background.
    clock.advance(101);
    expect(keys.peek(secret)?.id).toBe(keyId);
    expect(counter.count).toBe(2);
    // After the first entry's end (1 s) the refreshed one (until 1.7 s) answers without any IO.
    clock.advance(400);
    await vi.waitFor(() => expect(keys.peek(secret)?.id).toBe(keyId));
    expect(counter.count).toBe(2);
    // Its own end is the bound: with no traffic in between, the cache no longer vouches for it.
    clock.advance(600);
    expect(keys.peek(secret)).toBeUndefined();
  });

  it('still stops honouring a revoked key within the cache time', async () => {
    const other = await app.json<{ id: string; secret: string }>('POST', '/v1/api-keys', {
      name: 'revoked soon',
      scopes: ['check'],
    });
    const { clock, resolver: keys } = resolver(1);
    const idle = resolver(1);
    expect((await keys.resolve(other.body.secret))?.id).toBe(other.body.id);
    expect((await idle.resolver.resolve(other.body.secret))?.id).toBe(other.body.id);
    expect((await app.json('DELETE', `/v1/api-keys/${other.body.id}`)).status).toBe(200);
    // Until the refresh point the cached key is honoured (that is the cache time's promise).
    expect(keys.peek(other.body.secret)?.id).toBe(other.body.id);
    // Traffic past the refresh point: the background refresh finds the revocation.
    clock.advance(700);
    expect(keys.peek(other.body.secret)?.id).toBe(other.body.id);
    await vi.waitFor(() => expect(keys.peek(other.body.secret)).toBeNull());
    expect(await keys.resolve(other.body.secret)).toBeNull();
    // No traffic: the entry lapses at its end and the next look-up finds the revocation.
    idle.clock.advance(1000);
    expect(idle.resolver.peek(other.body.secret)).toBeUndefined();
    expect(await idle.resolver.resolve(other.body.secret)).toBeNull();
  });

  it('does not let a look-up that raced forget() put its answer back', async () => {
    const { resolver: keys } = resolver(5);
    const pending = keys.resolve(secret);
    keys.forget();
    expect((await pending)?.id).toBe(keyId);
    expect(keys.peek(secret)).toBeUndefined();
  });
});
