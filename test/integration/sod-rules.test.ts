import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { heldFeatures, sodRulesBrokenBy } from '../../src/modules/governance/sod-holdings.ts';
import { createTestApp, frozenClock, type TestApp } from '../helpers/harness.ts';
import { expectAdminOnly, expectHiddenFromOtherEnvironment } from '../helpers/security.ts';

let app: TestApp;

type Rule = {
  id: string;
  name: string;
  features: string[] | null;
  action: string | null;
  deleted_at: string | null;
};

beforeAll(async () => {
  app = await createTestApp({ clock: frozenClock('2026-03-10T12:00:00.000Z') });
  for (const f of [
    { key: 'create_payment', name: 'Create payments', type: 'boolean' },
    { key: 'approve_payment', name: 'Approve payments', type: 'boolean' },
    { key: 'api_calls', name: 'API calls', type: 'metered' },
  ])
    expect((await app.json('POST', '/v1/features', f)).status).toBe(201);
  await app.json('PUT', '/v1/customers/acme', { name: 'Acme' });
});
afterAll(async () => app?.close());

describe('SoD rules', () => {
  it('creates, lists, reads and deletes a rule, each audited', async () => {
    const made = await app.json<Rule>('POST', '/v1/sod-rules', {
      name: 'Maker-checker',
      features: ['create_payment', 'approve_payment'],
      action: 'deny',
    });
    expect(made.status).toBe(201);
    expect(made.body).toMatchObject({ name: 'Maker-checker', action: 'deny', duty: null, deleted_at: null });
    const list = await app.json<{ data: Rule[] }>('GET', '/v1/sod-rules');
    expect(list.body.data.map((r) => r.id)).toContain(made.body.id);
    expect((await app.json<Rule>('GET', `/v1/sod-rules/${made.body.id}`)).body.name).toBe('Maker-checker');
    const gone = await app.json<Rule>('DELETE', `/v1/sod-rules/${made.body.id}`);
    expect(gone.status).toBe(200);
    expect(gone.body.deleted_at).not.toBeNull();
    expect((await app.json<{ data: Rule[] }>('GET', '/v1/sod-rules')).body.data).toEqual([]);
    const audit = await app.json<{ data: Array<{ action: string }> }>(
      'GET',
      '/v1/audit-events?action=sod_rule.deleted',
    );
    expect(audit.body.data).toHaveLength(1);
  });

  it('accepts a duty rule', async () => {
    const res = await app.json<Rule & { duty: string; min_amount: number }>('POST', '/v1/sod-rules', {
      name: 'Creators do not approve extensions',
      duty: 'creator_may_not_approve_extension',
      min_amount: 1000,
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ features: null, action: null, min_amount: 1000 });
    await app.json('DELETE', `/v1/sod-rules/${res.body.id}`);
  });

  it('refuses rules naming fewer than two distinct features, or unknown ones, naming the field', async () => {
    const one = await app.json<{ code: string; errors: Array<{ path: string }> }>('POST', '/v1/sod-rules', {
      name: 'x',
      features: ['create_payment', 'create_payment'],
      action: 'deny',
    });
    expect(one.status).toBe(422);
    expect(one.body.errors.map((e) => e.path)).toEqual(['features']);
    const unknown = await app.json<{ code: string; errors: Array<{ path: string }> }>(
      'POST',
      '/v1/sod-rules',
      {
        name: 'x',
        features: ['create_payment', 'nope'],
        action: 'deny',
      },
    );
    expect(unknown.status).toBe(422);
    expect(unknown.body.errors.map((e) => e.path)).toEqual(['features.1']);
    const mixed = await app.json<{ errors: Array<{ path: string }> }>('POST', '/v1/sod-rules', {
      name: 'x',
      features: ['create_payment', 'approve_payment'],
      duty: 'creator_may_not_approve_extension',
    });
    expect(mixed.status).toBe(400);
    expect(mixed.body.errors.map((e) => e.path)).toContain('features');
    const noAction = await app.json<{ errors: Array<{ path: string }> }>('POST', '/v1/sod-rules', {
      name: 'x',
      features: ['create_payment', 'approve_payment'],
    });
    expect(noAction.body.errors.map((e) => e.path)).toEqual(['action']);
    expect((await app.json<{ data: Rule[] }>('GET', '/v1/sod-rules')).body.data).toEqual([]);
  });

  it('reads what a customer holds and the rules it breaks', async () => {
    const rule = await app.json<Rule>('POST', '/v1/sod-rules', {
      name: 'Maker-checker 2',
      features: ['create_payment', 'approve_payment'],
      action: 'require_approval',
    });
    const db = app.runtime.deps.db;
    const now = app.clock.now();
    await app.json('POST', '/v1/customers/acme/overrides', {
      feature: 'create_payment',
      enabled: true,
      reason: 'x',
    });
    expect([...(await heldFeatures(db, 'test', 'acme', now))]).toEqual(['create_payment']);
    expect(await sodRulesBrokenBy(db, 'test', 'acme', now)).toEqual([]);
    await app.runtime.deps.db
      .insertInto('overrides')
      .values({
        id: 'ovr_direct_write',
        environment: 'test',
        customer_id: 'acme',
        feature: 'approve_payment',
        effect: JSON.stringify({ type: 'boolean', enabled: true }),
        condition: null,
        starts_at: now,
        expires_at: null,
        reason: 'written around the API',
        created_by: JSON.stringify({ type: 'system', id: null, name: 'test' }),
        created_at: now,
      })
      .execute();
    const broken = await sodRulesBrokenBy(db, 'test', 'acme', now);
    expect(broken.map((r) => r.id)).toEqual([rule.body.id]);
  });

  it('is admin-only and per environment', async () => {
    await expectAdminOnly(app, 'GET', '/v1/sod-rules');
    await expectAdminOnly(app, 'POST', '/v1/sod-rules', { name: 'x', features: ['a', 'b'], action: 'deny' });
    const rule = await app.json<{ data: Rule[] }>('GET', '/v1/sod-rules');
    await expectHiddenFromOtherEnvironment(app, 'GET', `/v1/sod-rules/${rule.body.data?.[0]?.id}`);
    await expectHiddenFromOtherEnvironment(app, 'DELETE', `/v1/sod-rules/${rule.body.data?.[0]?.id}`);
  });
});

describe('SoD rules on every direct change', () => {
  let env: TestApp;
  beforeAll(async () => {
    env = await createTestApp({ clock: frozenClock('2026-03-10T12:00:00.000Z') });
    for (const f of [
      { key: 'wire', name: 'Wire transfers', type: 'metered' },
      { key: 'audit', name: 'Audit', type: 'boolean' },
      { key: 'payroll', name: 'Payroll', type: 'boolean' },
    ])
      await env.json('POST', '/v1/features', f);
    for (const p of [
      // A limit of 0: wire is not held until something adds to it (credits, a higher limit).
      {
        key: 'basic',
        name: 'Basic',
        entitlements: [{ feature: 'wire', limit: 0, reset: 'month', overage: 'deny' }],
      },
      {
        key: 'wired',
        name: 'Wired',
        entitlements: [{ feature: 'wire', limit: 10, reset: 'month', overage: 'deny' }],
      },
      { key: 'payroll_pack', name: 'Payroll', addon: true, entitlements: [{ feature: 'payroll' }] },
    ])
      expect((await env.json('POST', '/v1/plans', p)).status).toBe(201);
    await env.json('PUT', '/v1/customers/c1', { name: 'c1' });
    await env.json('POST', '/v1/customers/c1/subscriptions', { plan: 'basic' });
    await env.json('POST', '/v1/customers/c1/overrides', { feature: 'audit', enabled: true, reason: 'x' });
    await env.json('POST', '/v1/sod-rules', {
      name: 'Wire or audit',
      features: ['wire', 'audit'],
      action: 'deny',
    });
    await env.json('POST', '/v1/sod-rules', {
      name: 'Payroll with audit',
      features: ['payroll', 'audit'],
      action: 'require_approval',
    });
    await env.json('POST', '/v1/approval-policies', {
      name: 'Add-ons: finance',
      kinds: ['addon'],
      features: ['payroll_pack'],
      stages: [{ approvers: ['carol@vendor.com'] }],
    });
  });
  afterAll(async () => env?.close());

  it('refuses a grant that gives a feature of a deny rule', async () => {
    const res = await env.json<{ code: string; rule: { name: string } }>('POST', '/v1/customers/c1/grants', {
      feature: 'wire',
      amount: 5,
      reason: 'x',
    });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ code: 'sod_conflict', rule: { name: 'Wire or audit' } });
    expect((await env.json<{ data: unknown[] }>('GET', '/v1/customers/c1/grants')).body.data).toEqual([]);
  });

  it('refuses a plan change, now or at period end, that gives a feature of a deny rule', async () => {
    const subs = await env.json<{ data: Array<{ id: string }> }>('GET', '/v1/customers/c1/subscriptions');
    const id = subs.body.data[0]!.id;
    for (const timing of ['immediate', 'period_end']) {
      const res = await env.json<{ code: string }>('POST', `/v1/subscriptions/${id}/change`, {
        plan: 'wired',
        timing,
      });
      expect(res.status, timing).toBe(409);
      expect(res.body.code).toBe('sod_conflict');
    }
    const sub = await env.json<{ plan: string; scheduled_change: unknown }>('GET', `/v1/subscriptions/${id}`);
    expect(sub.body).toMatchObject({ plan: 'basic', scheduled_change: null });
  });

  it('lets exactly one of two concurrent changes through when together they would break a rule', async () => {
    await env.json('PUT', '/v1/customers/c3', { name: 'c3' });
    await env.json('POST', '/v1/customers/c3/subscriptions', { plan: 'basic' });
    const [a, b] = await Promise.all([
      env.json('POST', '/v1/customers/c3/overrides', { feature: 'audit', enabled: true, reason: 'a' }),
      env.json('POST', '/v1/customers/c3/overrides', { feature: 'wire', limit: 5, reason: 'b' }),
    ]);
    expect([a.status, b.status].sort()).toEqual([201, 409]);
    expect((await env.json<{ data: unknown[] }>('GET', '/v1/customers/c3/overrides')).body.data).toHaveLength(
      1,
    );
  });

  it('refuses an override that starts later and would then break a deny rule', async () => {
    const res = await env.json('POST', '/v1/customers/c1/overrides', {
      feature: 'wire',
      limit: 5,
      starts_at: '2026-04-01T00:00:00.000Z',
      reason: 'x',
    });
    expect(res.status).toBe(409);
  });

  it('files an add-on under a require_approval rule as an addon request (202)', async () => {
    const res = await env.request(
      'POST',
      '/v1/customers/c1/subscriptions',
      { plan: 'payroll_pack' },
      { headers: { 'tessera-actor': 'bob@vendor.com' } },
    );
    expect(res.status).toBe(202);
    const filed = (await res.json()) as { id: string; kind: string; change: unknown };
    expect(filed).toMatchObject({ kind: 'addon', change: { plan: 'payroll_pack' } });
    expect(res.headers.get('location')).toBe(`/v1/access-requests/${filed.id}`);
    expect(
      (await env.json<{ data: unknown[] }>('GET', '/v1/customers/c1/subscriptions')).body.data,
    ).toHaveLength(1);
    const approved = await env.json<{ status: string; applied: { kind: string } }>(
      'POST',
      `/v1/access-requests/${filed.id}/approve`,
      {},
      { headers: { 'tessera-actor': 'carol@vendor.com' } },
    );
    expect(approved.body).toMatchObject({ status: 'applied', applied: { kind: 'addon' } });
    expect(
      (await env.json<{ data: unknown[] }>('GET', '/v1/customers/c1/subscriptions')).body.data,
    ).toHaveLength(2);
  });
});
