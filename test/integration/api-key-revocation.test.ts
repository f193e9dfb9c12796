import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, createTestDatabase, frozenClock, type TestApp } from '../helpers/harness.ts';

/** Key look-ups are cached in process; a revoked key must stop working within the cache time. */
describe('API key revocation', () => {
  let shared: Awaited<ReturnType<typeof createTestDatabase>>;
  let nodeA: TestApp;
  let nodeB: TestApp;
  // One clock for both nodes, moved by the test: the cache time passes without sleeping.
  const clock = frozenClock();
  beforeAll(async () => {
    shared = await createTestDatabase();
    nodeA = await createTestApp({ database: shared.database, clock, config: { apiKeyCacheSeconds: 5 } });
    nodeB = await createTestApp({ database: shared.database, clock, config: { apiKeyCacheSeconds: 1 } });
  });
  afterAll(async () => {
    await nodeA?.close();
    await nodeB?.close();
    await shared?.drop();
  });

  it('stops at once on the node that revoked it, and within the cache time on the others', async () => {
    const key = await nodeA.json<{ id: string; secret: string }>('POST', '/v1/api-keys', {
      name: 'short-lived',
      scopes: ['admin'],
    });
    const use = (node: TestApp) =>
      node.json('GET', '/v1/api-keys?limit=1', undefined, { key: key.body.secret });
    expect((await use(nodeA)).status).toBe(200);
    expect((await use(nodeB)).status).toBe(200);
    expect((await nodeA.json('DELETE', `/v1/api-keys/${key.body.id}`)).status).toBe(200);
    expect((await use(nodeA)).status).toBe(401);
    // Node B's cache still vouches for the key until its entry (1 s) ends, and no longer.
    clock.advance(999);
    expect((await use(nodeB)).status).toBe(200);
    clock.advance(1);
    expect((await use(nodeB)).status).toBe(401);
  });
});
