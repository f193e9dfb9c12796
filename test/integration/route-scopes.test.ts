import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/harness.ts';
import { scenario } from '../helpers/scenario.ts';

/**
 * Generated from `/openapi.json`: every authenticated route is walked, so a route added later is
 * covered without anyone remembering to. The `check` scope's routes are the only ones listed here.
 */
const CHECK_ROUTES = new Set([
  'post /v1/check',
  'post /v1/usage',
  'post /v1/usage/batch',
  'post /v1/reservations',
  'get /v1/reservations/{id}',
  'post /v1/reservations/{id}/commit',
  'post /v1/reservations/{id}/release',
  'get /v1/customers/{customer_id}/entitlements',
  'post /v1/customers/{customer_id}/token',
]);
const BODY_METHODS = new Set(['post', 'put', 'patch']);

interface Operation {
  method: string;
  path: string;
  secured: boolean;
  hasBody: boolean;
}

let app: TestApp;
let operations: Operation[];
beforeAll(async () => {
  app = await createTestApp();
  const doc = await app.json<{
    paths: Record<string, Record<string, { security?: unknown[]; requestBody?: unknown }>>;
  }>('GET', '/openapi.json', undefined, { key: null });
  operations = Object.entries(doc.body.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({
      method,
      path,
      secured: (op.security ?? []).length > 0,
      hasBody: op.requestBody !== undefined,
    })),
  );
});
afterAll(async () => app?.close());

const fill = (path: string, values: Record<string, string>) =>
  path.replace(/\{(\w+)\}/g, (_, name: string) => values[name] ?? 'x');

async function countRows(): Promise<number> {
  const audit = await app.runtime.deps.db
    .selectFrom('audit_events')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(audit.n);
}

describe('every route checks its scope right after authentication', () => {
  it('answers 403 to a check key with an invalid body or query on every admin route, writing nothing', async () => {
    const admin = operations.filter((o) => o.secured && !CHECK_ROUTES.has(`${o.method} ${o.path}`));
    expect(admin.length).toBeGreaterThan(30);
    const before = await countRows();
    const wrong: string[] = [];
    for (const op of admin) {
      const path = `${fill(op.path, {})}?limit=not-a-number`;
      const body = BODY_METHODS.has(op.method) ? { not_a_field: true } : undefined;
      const res = await app.json(op.method.toUpperCase(), path, body, { key: app.checkKey });
      if (res.status !== 403 || (res.body as { code?: string }).code !== 'insufficient_scope')
        wrong.push(`${op.method} ${op.path}: ${res.status}`);
    }
    expect(wrong).toEqual([]);
    expect(await countRows()).toBe(before);
  });

  it('lets a check key reach validation on the check routes', async () => {
    const checkOps = operations.filter((o) => CHECK_ROUTES.has(`${o.method} ${o.path}`));
    expect(checkOps).toHaveLength(CHECK_ROUTES.size);
    for (const op of checkOps.filter((o) => o.hasBody)) {
      const res = await app.json(
        op.method.toUpperCase(),
        fill(op.path, {}),
        { not_a_field: true },
        {
          key: app.checkKey,
        },
      );
      expect(res.status, `${op.method} ${op.path}`).toBe(400);
    }
  });

  it('answers 404 to another environment’s admin key for every object read or removal', async () => {
    const s = await scenario(app)
      .feature('calls', 'metered')
      .plan('pro', [{ feature: 'calls', limit: 100, reset: 'month', overage: 'deny' }])
      .customer('acme')
      .onPlan('pro');
    const sub = { id: s.subscriptions.get('pro') };
    const override = await s.override('calls', { limit: 200 });
    const grant = await s.grant('calls', 10);
    const reservation = await app.json<{ id: string }>(
      'POST',
      '/v1/reservations',
      { customer_id: s.customerId, feature: s.key('calls'), amount: 1, ttl_seconds: 60 },
      { key: app.checkKey },
    );
    expect(reservation.status).toBe(201);
    const key = await app.json<{ id: string }>('POST', '/v1/api-keys', { name: 'hidden', scopes: ['check'] });
    const ids: Record<string, Record<string, string>> = {
      'api-keys': { id: key.body.id },
      customers: { customer_id: s.customerId },
      features: { key: s.key('calls') },
      plans: { key: s.key('pro'), version: '1' },
      subscriptions: { id: sub.id as string },
      overrides: { id: override.id as string },
      grants: { id: grant.id as string },
      reservations: { id: reservation.body.id },
    };
    const objectRoutes = operations.filter(
      (o) => o.secured && o.path.includes('{') && (o.method === 'get' || o.method === 'delete'),
    );
    expect(objectRoutes.length).toBeGreaterThan(10);
    const wrong: string[] = [];
    for (const op of objectRoutes) {
      const collection = op.path.split('/')[2]!;
      const path = fill(op.path, ids[collection] ?? {});
      const res = await app.json(op.method.toUpperCase(), path, undefined, { key: app.liveAdminKey });
      if (res.status !== 404) wrong.push(`${op.method} ${path}: ${res.status}`);
    }
    expect(wrong).toEqual([]);
  });
});
