import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCustomerSnapshot, loadCustomerSnapshots } from '../../src/modules/entitlements/snapshot.ts';
import { SnapshotBatcher } from '../../src/modules/entitlements/snapshot-reads.ts';
import { createTestApp, type TestApp } from '../helpers/harness.ts';

/**
 * Cache misses that arrive together are read together: four queries for all of them. A batched
 * load must give each customer exactly the snapshot a load of its own gives, whatever the customer
 * holds (subscriptions, overrides, grants, nothing, or not there at all).
 */
describe('batched snapshot loads', () => {
  let app: TestApp;
  const customers = Array.from({ length: 30 }, (_, i) => `cust-${i}`);
  beforeAll(async () => {
    app = await createTestApp();
    await app.json('POST', '/v1/features', { key: 'sso', name: 'SSO', type: 'boolean' });
    await app.json('POST', '/v1/features', { key: 'calls', name: 'Calls', type: 'metered' });
    await app.json('POST', '/v1/plans', {
      key: 'pro',
      name: 'Pro',
      entitlements: [{ feature: 'sso' }, { feature: 'calls', limit: 100, period: 'month' }],
    });
    await app.json('POST', '/v1/plans', { key: 'free', name: 'Free', entitlements: [] });
    for (const [i, id] of customers.entries()) {
      await app.json('PUT', `/v1/customers/${id}`, { attributes: { n: i } });
      if (i % 3 !== 2)
        await app.json('POST', `/v1/customers/${id}/subscriptions`, { plan: i % 3 ? 'pro' : 'free' });
      if (i % 4 === 0)
        await app.json('POST', `/v1/customers/${id}/overrides`, {
          feature: 'sso',
          enabled: true,
          reason: 'deal',
        });
      if (i % 5 === 0)
        await app.json('POST', `/v1/customers/${id}/grants`, {
          feature: 'calls',
          amount: 50,
          reason: 'goodwill',
        });
    }
    await app.json('DELETE', '/v1/customers/cust-29');
  });
  afterAll(async () => {
    await app?.close();
  });

  it('gives each customer the snapshot a load of its own gives', async () => {
    const db = app.runtime.deps.db;
    const now = new Date();
    const ids = [...customers, 'nobody'];
    const together = await loadCustomerSnapshots(db, 'test', ids, now);
    expect(together.size).toBe(ids.length);
    for (const id of ids) expect(together.get(id)).toEqual(await loadCustomerSnapshot(db, 'test', id, now));
    expect(together.get('nobody')!.exists).toBe(false);
    expect(together.get('cust-29')!.exists).toBe(false);
    expect(together.get('cust-0')!.overrides).toHaveLength(1);
    expect(together.get('cust-0')!.grants).toHaveLength(1);
  });

  it('reads the misses of one turn together, once per customer, and answers each its own', async () => {
    const db = app.runtime.deps.db;
    const batcher = new SnapshotBatcher(db);
    const now = new Date();
    const asked = [...customers, ...customers.slice(0, 5)];
    const loaded = await Promise.all(asked.map((id) => batcher.load('test', id, now)));
    for (const [i, id] of asked.entries()) {
      expect(loaded[i]!.customerId).toBe(id);
      expect(loaded[i]).toEqual(await loadCustomerSnapshot(db, 'test', id, now));
    }
    // The same customer asked twice in one turn shares one read.
    expect(loaded[customers.length]).toBe(loaded[0]);
  });

  it('answers a burst of cold checks as checks one by one do', async () => {
    const { cache } = app.runtime.deps.services.decisions;
    const check = (customer_id: string, feature: string) =>
      app.json<{ allowed: boolean; reason: string }>('POST', '/v1/check', { customer_id, feature });
    cache.clear();
    const burst = await Promise.all(customers.flatMap((id) => [check(id, 'sso'), check(id, 'calls')]));
    cache.clear();
    const oneByOne = [];
    for (const id of customers) oneByOne.push(await check(id, 'sso'), await check(id, 'calls'));
    expect(burst.map((r) => [r.status, r.body.allowed, r.body.reason])).toEqual(
      oneByOne.map((r) => [r.status, r.body.allowed, r.body.reason]),
    );
    expect(burst.some((r) => r.body.allowed)).toBe(true);
    expect(burst.some((r) => !r.body.allowed)).toBe(true);
  });
});
