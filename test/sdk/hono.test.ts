import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRequireFeature } from '../../sdk/src/hono.ts';
import { createTessera } from '../../sdk/src/index.ts';
import { createTestApp, serveOverHttp, services, type TestApp } from '../helpers/harness.ts';

/** requireFeature in a vendor's own Hono app, against the real Tessera over HTTP. */

let app: TestApp;
let http: Awaited<ReturnType<typeof serveOverHttp>>;
let vendor: Hono;

beforeAll(async () => {
  app = await createTestApp({ redis: services.redis });
  await app.json('POST', '/v1/features', { key: 'reports', name: 'Reports', type: 'boolean' });
  await app.json('POST', '/v1/features', { key: 'exports', name: 'Exports', type: 'metered' });
  await app.json('POST', '/v1/plans', {
    key: 'pro',
    name: 'Pro',
    entitlements: [{ feature: 'reports' }, { feature: 'exports', limit: 5, reset: 'month', overage: 'deny' }],
  });
  await app.json('PUT', '/v1/customers/acme', { name: 'Acme' });
  await app.json('POST', '/v1/customers/acme/subscriptions', { plan: 'pro' });
  await app.json('PUT', '/v1/customers/free', { name: 'Free' });
  http = await serveOverHttp(app.runtime);

  const tessera = createTessera({ baseUrl: http.base, apiKey: app.checkKey });
  const requireFeature = createRequireFeature({ tessera, customerId: (c) => c.req.header('x-customer-id') });
  vendor = new Hono();
  vendor.get('/reports', requireFeature('reports'), (c) => c.text('report'));
  vendor.post('/exports', requireFeature('exports', { quantity: 3 }), (c) => c.text('exported'));
});
afterAll(async () => {
  await http?.close();
  await app?.close();
});

const as = (customer?: string) => (customer ? { headers: { 'x-customer-id': customer } } : {});

describe('requireFeature', () => {
  it('lets an allowed request through', async () => {
    const res = await vendor.request('/reports', as('acme'));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('report');
  });

  it('answers 403 problem+json naming the feature when denied', async () => {
    const res = await vendor.request('/reports', as('free'));
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(await res.json()).toMatchObject({
      status: 403,
      code: 'feature_not_allowed',
      feature: 'reports',
      reason: 'no_subscription',
    });
  });

  it('checks the quantity asked for', async () => {
    expect((await vendor.request('/exports', { method: 'POST', ...as('acme') })).status).toBe(200);
    await app.json('POST', '/v1/usage', {
      customer_id: 'acme',
      feature: 'exports',
      value: 3,
      idempotency_key: 'e1',
    });
    const res = await vendor.request('/exports', { method: 'POST', ...as('acme') });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ feature: 'exports', reason: 'limit_exceeded' });
  });

  it('answers 401 when the request names no customer', async () => {
    expect((await vendor.request('/reports')).status).toBe(401);
  });
});
