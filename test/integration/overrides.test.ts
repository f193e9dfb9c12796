import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManualClock } from '../../src/platform/clock.ts';
import { createTestApp, frozenClock, type TestApp } from '../helpers/harness.ts';
import { expectAdminOnly, expectHiddenFromOtherEnvironment } from '../helpers/security.ts';

let app: TestApp;
let clock: ManualClock;
const HOUR = 3_600_000;

beforeAll(async () => {
  clock = frozenClock('2026-03-10T12:00:00.000Z');
  app = await createTestApp({ clock });
  for (const f of [
    { key: 'sso', name: 'SSO', type: 'boolean' },
    { key: 'theme', name: 'Theme', type: 'config' },
    { key: 'api_calls', name: 'API calls', type: 'metered' },
  ]) {
    expect((await app.json('POST', '/v1/features', f)).status).toBe(201);
  }
  await app.json('PUT', '/v1/customers/acme', { name: 'Acme', attributes: { region: 'eu' } });
});
afterAll(async () => app?.close());

const check = async (feature: string, extra: Record<string, unknown> = {}, customer = 'acme') =>
  (
    await app.json<Record<string, unknown>>(
      'POST',
      '/v1/check',
      { customer_id: customer, feature, ...extra },
      { key: app.checkKey },
    )
  ).body;

describe('decisions without a plan', () => {
  it('answers unknown customers and features with a reason, never 404', async () => {
    expect(await check('sso', {}, 'nobody')).toMatchObject({
      allowed: false,
      reason: 'unknown_customer',
      customer_id: 'nobody',
    });
    expect(await check('teleport')).toMatchObject({ allowed: false, reason: 'unknown_feature' });
    expect(await check('sso')).toMatchObject({ allowed: false, reason: 'no_subscription', type: 'boolean' });
  });

  it('validates the check body', async () => {
    const res = await app.json<{ errors: Array<{ path: string }> }>(
      'POST',
      '/v1/check',
      { customer_id: 'acme', feature: 'sso', quantity: -1 },
      { key: app.checkKey },
    );
    expect(res.status).toBe(400);
    expect(res.body.errors[0]?.path).toBe('quantity');
    const ctx = await app.json<{ errors: Array<{ path: string }> }>(
      'POST',
      '/v1/check',
      { customer_id: 'acme', feature: 'sso', context: { nested: { a: 1 } } },
      { key: app.checkKey },
    );
    expect(ctx.status).toBe(400);
    expect(ctx.body.errors[0]?.path).toMatch(/^context/);
    expect(
      (await app.json('POST', '/v1/check', { customer_id: 'acme', feature: 'sso' }, { key: null })).status,
    ).toBe(401);
  });
});

describe('overrides', () => {
  it('grants a time-boxed exception that ends by itself, and bumps the version', async () => {
    const before = await check('sso');
    const created = await app.json<{ id: string; status: string }>('POST', '/v1/customers/acme/overrides', {
      feature: 'sso',
      enabled: true,
      expires_at: new Date(clock.now().getTime() + 2 * HOUR).toISOString(),
      reason: 'incident workaround',
    });
    expect(created.status).toBe(201);
    expect(created.body.status).toBe('active');
    const during = await check('sso');
    expect(during).toMatchObject({
      allowed: true,
      reason: 'granted',
      sources: [{ kind: 'override', id: created.body.id }],
    });
    expect(during.version as number).toBeGreaterThan(before.version as number);
    clock.advance(2 * HOUR);
    expect(await check('sso')).toMatchObject({ allowed: false });
    const list = await app.json<{ data: Array<{ id: string; status: string }> }>(
      'GET',
      '/v1/customers/acme/overrides',
    );
    expect(list.body.data.find((o) => o.id === created.body.id)?.status).toBe('expired');
  });

  it('ends an override now and keeps it as history', async () => {
    const created = await app.json<{ id: string }>('POST', '/v1/customers/acme/overrides', {
      feature: 'theme',
      value: { color: 'teal' },
      reason: 'brand',
    });
    expect(await check('theme')).toMatchObject({ allowed: true, value: { color: 'teal' } });
    const ended = await app.json<{ status: string; ended_at: string }>(
      'DELETE',
      `/v1/overrides/${created.body.id}`,
    );
    expect(ended.body).toMatchObject({ status: 'ended', ended_at: clock.now().toISOString() });
    expect(await check('theme')).toMatchObject({ allowed: false });
    const audit = await app.json<{ data: Array<{ action: string }> }>(
      'GET',
      '/v1/audit-events?customer_id=acme&action=override.*',
    );
    expect(audit.body.data.map((e) => e.action)).toEqual(
      expect.arrayContaining(['override.created', 'override.ended']),
    );
  });

  it('evaluates conditions against the check context', async () => {
    const created = await app.json('POST', '/v1/customers/acme/overrides', {
      feature: 'sso',
      enabled: true,
      condition: "context.device_compliant && customer.attributes.region in ['eu','us']",
      reason: 'compliant devices only',
    });
    expect(created.status).toBe(201);
    expect(await check('sso', { context: { device_compliant: true } })).toMatchObject({ allowed: true });
    expect(await check('sso', { context: { device_compliant: false } })).toMatchObject({
      allowed: false,
      reason: 'condition_failed',
    });
    expect(await check('sso')).toMatchObject({ allowed: false, reason: 'condition_failed' });
  });

  it('schedules an override that starts later', async () => {
    const startsAt = new Date(clock.now().getTime() + HOUR).toISOString();
    const created = await app.json<{ status: string }>('POST', '/v1/customers/acme/overrides', {
      feature: 'api_calls',
      limit: 500,
      starts_at: startsAt,
      reason: 'next hour',
    });
    expect(created.body.status).toBe('scheduled');
    expect(await check('api_calls')).toMatchObject({ allowed: false });
    clock.advance(HOUR);
    expect(await check('api_calls', { quantity: 500 })).toMatchObject({
      allowed: true,
      limit: 500,
      remaining: 500,
    });
    expect(await check('api_calls', { quantity: 501 })).toMatchObject({
      allowed: false,
      reason: 'limit_exceeded',
    });
  });

  it('rejects bad overrides naming the field, writing nothing', async () => {
    const count = async () =>
      (await app.runtime.deps.db.selectFrom('overrides').select('id').execute()).length;
    const before = await count();
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ feature: 'sso', limit: 5, reason: 'x' }, 422, 'limit'],
      [{ feature: 'sso', reason: 'x' }, 422, 'enabled'],
      [{ feature: 'ghost', enabled: true, reason: 'x' }, 422, 'feature'],
      [{ feature: 'sso', enabled: true }, 400, 'reason'],
      [{ feature: 'sso', enabled: true, reason: 'x', condition: 'context.' }, 422, 'condition'],
      [{ feature: 'sso', enabled: true, reason: 'x', expires_at: '2020-01-01T00:00:00Z' }, 422, 'expires_at'],
      [{ feature: 'sso', enabled: true, reason: 'x', expires_at: 'tomorrow' }, 400, 'expires_at'],
      [{ feature: 'sso', enabled: true, reason: 'x', colour: 'red' }, 400, 'colour'],
    ];
    for (const [body, status, path] of cases) {
      const res = await app.json<{ errors: Array<{ path: string }> }>(
        'POST',
        '/v1/customers/acme/overrides',
        body,
      );
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(
        res.body.errors.map((e) => e.path),
        JSON.stringify(body),
      ).toContain(path);
    }
    expect(
      (
        await app.json('POST', '/v1/customers/nobody/overrides', {
          feature: 'sso',
          enabled: true,
          reason: 'x',
        })
      ).status,
    ).toBe(404);
    expect(await count()).toBe(before);
  });

  it('is admin-only and walled per environment', async () => {
    const created = await app.json<{ id: string }>('POST', '/v1/customers/acme/overrides', {
      feature: 'sso',
      enabled: true,
      reason: 'x',
    });
    await expectAdminOnly(app, 'POST', '/v1/customers/acme/overrides', {
      feature: 'sso',
      enabled: true,
      reason: 'x',
    });
    await expectAdminOnly(app, 'GET', '/v1/customers/acme/overrides');
    await expectAdminOnly(app, 'DELETE', `/v1/overrides/${created.body.id}`);
    await expectHiddenFromOtherEnvironment(app, 'DELETE', `/v1/overrides/${created.body.id}`);
    await expectHiddenFromOtherEnvironment(app, 'GET', '/v1/customers/acme/overrides');
  });
});

describe('credit grants', () => {
  it('adds credit to a metered limit, by status, and voids', async () => {
    await app.json('PUT', '/v1/customers/credits', {});
    await app.json('POST', '/v1/customers/credits/overrides', {
      feature: 'api_calls',
      limit: 100,
      reason: 'base',
    });
    const g1 = await app.json<{ id: string; status: string }>('POST', '/v1/customers/credits/grants', {
      feature: 'api_calls',
      amount: 50,
      reason: 'goodwill',
    });
    expect(g1.status).toBe(201);
    expect(g1.body.status).toBe('active');
    await app.json('POST', '/v1/customers/credits/grants', {
      feature: 'api_calls',
      amount: 25,
      priority: 1,
      expires_at: new Date(clock.now().getTime() + HOUR).toISOString(),
      reason: 'promo',
    });
    expect(await check('api_calls', { quantity: 175 }, 'credits')).toMatchObject({
      allowed: true,
      remaining: 175,
    });
    expect(await check('api_calls', { quantity: 176 }, 'credits')).toMatchObject({
      allowed: false,
      reason: 'limit_exceeded',
    });
    clock.advance(HOUR);
    expect(await check('api_calls', { quantity: 151 }, 'credits')).toMatchObject({ allowed: false });
    const voided = await app.json<{ status: string }>('DELETE', `/v1/grants/${g1.body.id}`);
    expect(voided.body.status).toBe('voided');
    expect(await check('api_calls', { quantity: 101 }, 'credits')).toMatchObject({
      allowed: false,
      remaining: 100,
    });
  });

  it('refuses credits for non-metered features and bad amounts', async () => {
    const boolean = await app.json<{ errors: Array<{ path: string }> }>('POST', '/v1/customers/acme/grants', {
      feature: 'sso',
      amount: 5,
      reason: 'x',
    });
    expect(boolean.status).toBe(422);
    expect(boolean.body.errors[0]?.path).toBe('feature');
    const negative = await app.json<{ errors: Array<{ path: string }> }>(
      'POST',
      '/v1/customers/acme/grants',
      { feature: 'api_calls', amount: -5, reason: 'x' },
    );
    expect(negative.status).toBe(400);
    expect(negative.body.errors[0]?.path).toBe('amount');
    await expectAdminOnly(app, 'POST', '/v1/customers/acme/grants', {
      feature: 'api_calls',
      amount: 5,
      reason: 'x',
    });
  });
});

describe('entitlements list', () => {
  it('lists every feature with access and sources, 404 for unknown customers', async () => {
    const res = await app.json<{
      customer_id: string;
      version: number;
      entitlements: Array<{ feature: string; has_access: boolean }>;
    }>('GET', '/v1/customers/credits/entitlements', undefined, { key: app.checkKey });
    expect(res.status).toBe(200);
    expect(res.body.entitlements.map((e) => e.feature)).toEqual(['api_calls', 'sso', 'theme']);
    expect(res.body.entitlements.find((e) => e.feature === 'api_calls')).toMatchObject({
      has_access: true,
      limit: 100,
      sources: expect.any(Array),
    });
    expect(
      (await app.json('GET', '/v1/customers/nobody/entitlements', undefined, { key: app.checkKey })).status,
    ).toBe(404);
    expect(
      (
        await app.json('GET', '/v1/customers/credits/entitlements?context=notjson', undefined, {
          key: app.checkKey,
        })
      ).status,
    ).toBe(400);
    expect(
      (await app.json('GET', '/v1/customers/credits/entitlements', undefined, { key: app.liveAdminKey }))
        .status,
    ).toBe(404);
  });
});
