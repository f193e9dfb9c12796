import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, createTestDatabase, type TestApp } from '../helpers/harness.ts';

/** Key look-ups are cached in process; a revoked key must stop working within the cache time. */
describe('API key revocation', () => {
  let shared: Awaited<ReturnType<typeof createTestDatabase>>;
  let nodeA: TestApp;
  let nodeB: TestApp;
  beforeAll(async () => {
    shared = await createTestDatabase();
    nodeA = await createTestApp({ database: shared.database, config: { apiKeyCacheSeconds: 5 } });
    nodeB = await createTestApp({ database: shared.database, config: { apiKeyCacheSeconds: 1 } });
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
    const started = Date.now();
    while ((await use(nodeB)).status === 200) {
      expect(Date.now() - started).toBeLessThan(1500);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await use(nodeB)).status).toBe(401);
  });
});
