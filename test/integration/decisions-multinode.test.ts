import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestNodes, services, type TestApp } from '../helpers/harness.ts';

/**
 * Two API nodes on one Postgres and one Redis: a change made through one is reflected by
 * `POST /v1/check` on the other within a second, although the other answers from its cache.
 */
describe.skipIf(!services.redis)('cache invalidation across nodes', () => {
  let nodes: Awaited<ReturnType<typeof createTestNodes>>;
  let nodeA: TestApp;
  let nodeB: TestApp;
  beforeAll(async () => {
    nodes = await createTestNodes();
    ({ nodeA, nodeB } = nodes);
  });
  afterAll(async () => {
    await nodes?.close();
  });

  async function checkOn(node: TestApp, feature: string) {
    return (
      await node.json<{ allowed: boolean; reason: string; version: number }>('POST', '/v1/check', {
        customer_id: 'acme',
        feature,
      })
    ).body;
  }

  async function within(ms: number, node: TestApp, feature: string, expected: boolean): Promise<number> {
    const started = Date.now();
    for (;;) {
      if ((await checkOn(node, feature)).allowed === expected) return Date.now() - started;
      if (Date.now() - started > ms) throw new Error(`node did not see the change within ${ms} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  it('reflects an override and a plan change made on the other node within one second', async () => {
    expect(
      (await nodeA.json('POST', '/v1/features', { key: 'sso', name: 'SSO', type: 'boolean' })).status,
    ).toBe(201);
    expect(
      (await nodeA.json('POST', '/v1/features', { key: 'audit_log', name: 'Audit log', type: 'boolean' }))
        .status,
    ).toBe(201);
    expect(
      (
        await nodeA.json('POST', '/v1/plans', {
          key: 'basic',
          name: 'Basic',
          entitlements: [{ feature: 'audit_log', enabled: true }],
        })
      ).status,
    ).toBe(201);
    expect(
      (
        await nodeA.json('POST', '/v1/plans', {
          key: 'pro',
          name: 'Pro',
          entitlements: [
            { feature: 'sso', enabled: true },
            { feature: 'audit_log', enabled: true },
          ],
        })
      ).status,
    ).toBe(201);
    await nodeA.json('PUT', '/v1/customers/acme', { name: 'Acme' });
    const sub = await nodeA.json<{ id: string }>('POST', '/v1/customers/acme/subscriptions', {
      plan: 'basic',
    });
    expect(sub.status).toBe(201);

    // Node B warms its cache once the invalidations of the set-up have arrived: sso is not in basic.
    await within(1000, nodeB, 'sso', false);
    await new Promise((r) => setTimeout(r, 300));
    await within(1000, nodeB, 'sso', false);
    expect(nodeB.runtime.deps.services.decisions.cache.get('test', 'acme')).toBeDefined();

    const override = await nodeA.json<{ id: string }>('POST', '/v1/customers/acme/overrides', {
      feature: 'sso',
      enabled: true,
      reason: 'trial of SSO',
    });
    expect(override.status).toBe(201);
    const seenOverride = await within(1000, nodeB, 'sso', true);
    expect(seenOverride).toBeLessThan(1000);

    await nodeA.json('DELETE', `/v1/overrides/${override.body.id}`);
    await within(1000, nodeB, 'sso', false);

    const change = await nodeA.json('POST', `/v1/subscriptions/${sub.body.id}/change`, {
      plan: 'pro',
      timing: 'immediate',
    });
    expect(change.status).toBe(200);
    await within(1000, nodeB, 'sso', true);
    const versions = [await checkOn(nodeA, 'sso'), await checkOn(nodeB, 'sso')].map((d) => d.version);
    expect(versions[0]).toBe(versions[1]);
  });

  it('drops a node’s cached snapshots when the catalog changes on another node', async () => {
    await within(1000, nodeB, 'audit_log', true);
    // A new plan version does not move existing subscribers; archiving a feature the plan grants keeps access.
    const patched = await nodeA.json('PATCH', '/v1/settings', { past_due_grace_days: 5 });
    expect(patched.status).toBe(200);
    // The environment-wide invalidation reached node B: its next check reloads (no stale epoch).
    await within(1000, nodeB, 'audit_log', true);
  });
});
