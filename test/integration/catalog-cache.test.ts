import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/harness.ts';

/**
 * Snapshot loads share their environment's catalog (features, settings, plan versions) instead of
 * reading it per customer; a catalog change starts a new one, so checks see it at once.
 */
describe('the per-environment catalog behind snapshot loads', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await createTestApp();
    await app.json('POST', '/v1/features', { key: 'sso', name: 'SSO', type: 'boolean' });
    await app.json('POST', '/v1/plans', { key: 'pro', name: 'Pro', entitlements: [{ feature: 'sso' }] });
    for (const id of ['a', 'b']) {
      await app.json('PUT', `/v1/customers/${id}`, {});
      await app.json('POST', `/v1/customers/${id}/subscriptions`, { plan: 'pro' });
    }
  });
  afterAll(async () => {
    await app?.close();
  });

  const check = async (customer_id: string, feature: string) =>
    (await app.json<{ allowed: boolean; reason: string }>('POST', '/v1/check', { customer_id, feature }))
      .body;

  it('is read once for many customers and read again after a catalog change', async () => {
    const { cache } = app.runtime.deps.services.decisions;
    expect(await check('a', 'sso')).toMatchObject({ allowed: true, reason: 'granted' });
    expect(await check('b', 'sso')).toMatchObject({ allowed: true, reason: 'granted' });
    const a = cache.get('test', 'a')!;
    const b = cache.get('test', 'b')!;
    expect(a.features).toBe(b.features);
    expect(a.policy).toBe(b.policy);
    expect(a.planVersions.get('pro@1')).toBe(b.planVersions.get('pro@1'));
    const catalog = cache.catalogs!.catalog('test');
    expect(cache.catalogs!.catalog('test')).toBe(catalog);

    expect(await check('a', 'audit_log')).toMatchObject({ allowed: false, reason: 'unknown_feature' });
    await app.json('POST', '/v1/features', { key: 'audit_log', name: 'Audit log', type: 'boolean' });
    expect(cache.catalogs!.catalog('test')).not.toBe(catalog);
    expect(await check('a', 'audit_log')).toMatchObject({ allowed: false, reason: 'not_in_plan' });

    // Settings are part of it too: a fallback plan applies to a customer with nothing, at once.
    await app.json('POST', '/v1/plans', {
      key: 'free',
      name: 'Free',
      entitlements: [{ feature: 'audit_log' }],
    });
    await app.json('PUT', '/v1/customers/c', {});
    expect(await check('c', 'audit_log')).toMatchObject({ allowed: false });
    const settings = await app.json('PATCH', '/v1/settings', { fallback_plan: 'free' });
    expect(settings.status, JSON.stringify(settings.body)).toBeLessThan(300);
    expect(await check('c', 'audit_log')).toMatchObject({ allowed: true, reason: 'granted' });
  });
});
