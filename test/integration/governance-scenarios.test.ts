import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { settleTimedOutRequests } from '../../src/modules/governance/access-requests.ts';
import type { ManualClock } from '../../src/platform/clock.ts';
import { runDueTransitions, SCHEDULER_ACTOR } from '../../src/workers/scheduler.ts';
import { createTestApp, frozenClock, type TestApp } from '../helpers/harness.ts';
import { expectAdminOnly } from '../helpers/security.ts';

/**
 * Governance end to end: policies with conditions, staged approvals, timeouts, just-in-time
 * access, separation-of-duties rules on direct changes and on approved requests, incompatible
 * duties, add-on requests; the audit chain verifies at the end.
 */
let app: TestApp;
let clock: ManualClock;
const HOUR = 3_600_000;

type Req = {
  id: string;
  status: string;
  stage: number;
  stage_deadline_at: string | null;
  policy_id: string;
  requested_by: string;
  justification: string;
  applied?: { kind: string; id: string; expires_at: string | null };
  decisions: Array<Record<string, unknown>>;
  code?: string;
  rule?: { id: string; name: string };
  errors?: Array<{ path: string }>;
};

const as = (person: string) => ({ headers: { 'tessera-actor': person } });
const request = (person: string, body: Record<string, unknown>) =>
  app.json<Req>('POST', '/v1/access-requests', body, as(person));
const decide = (id: string, decision: 'approve' | 'deny', person: string) =>
  app.json<Req>('POST', `/v1/access-requests/${id}/${decision}`, {}, as(person));
const check = async (customer: string, feature: string) =>
  (
    await app.json<{ allowed: boolean }>(
      'POST',
      '/v1/check',
      { customer_id: customer, feature },
      { key: app.checkKey },
    )
  ).body.allowed;
const version = async (customer: string) =>
  (await app.json<{ version: number }>('GET', `/v1/customers/${customer}/entitlements`)).body.version;
const overrideCount = async (customer: string) =>
  (await app.json<{ data: unknown[] }>('GET', `/v1/customers/${customer}/overrides`)).body.data.length;

const rules: Record<string, { id: string; name: string }> = {};
const policies: Record<string, string> = {};

beforeAll(async () => {
  clock = frozenClock('2026-06-01T09:00:00.000Z');
  app = await createTestApp({ clock });
  for (const f of [
    { key: 'sso', name: 'SSO', type: 'boolean' },
    { key: 'create_payment', name: 'Create payments', type: 'boolean' },
    { key: 'approve_payment', name: 'Approve payments', type: 'boolean' },
    { key: 'refunds', name: 'Refunds', type: 'boolean' },
    { key: 'audit_log', name: 'Audit log', type: 'boolean' },
    { key: 'exports', name: 'Exports', type: 'boolean' },
    { key: 'api_calls', name: 'API calls', type: 'metered' },
  ])
    expect((await app.json('POST', '/v1/features', f)).status).toBe(201);
  const plans = [
    {
      key: 'pro',
      name: 'Pro',
      entitlements: [
        { feature: 'create_payment', enabled: true },
        { feature: 'api_calls', limit: 1000, reset: 'month', overage: 'deny' },
      ],
    },
    { key: 'approvals_pack', name: 'Approvals', addon: true, entitlements: [{ feature: 'approve_payment' }] },
    { key: 'exports_pack', name: 'Exports', addon: true, entitlements: [{ feature: 'exports' }] },
  ];
  for (const p of plans) expect((await app.json('POST', '/v1/plans', p)).status).toBe(201);
  for (const c of ['acme', 'globex', 'initech', 'umbrella', 'hooli', 'stark']) {
    const gold = c === 'stark' ? { attributes: { tier: 'gold' } } : {};
    await app.json('PUT', `/v1/customers/${c}`, { name: c, ...gold });
    expect((await app.json('POST', `/v1/customers/${c}/subscriptions`, { plan: 'pro' })).status).toBe(201);
  }
  expect(
    (await app.json('PUT', '/v1/actor-groups/finance', { members: ['carol@vendor.com', 'dan@vendor.com'] }))
      .status,
  ).toBe(201);
  for (const rule of [
    { name: 'Maker-checker', features: ['create_payment', 'approve_payment'], action: 'deny' },
    { name: 'Refunds need sign-off', features: ['create_payment', 'refunds'], action: 'require_approval' },
    { name: 'No approving your own exception', duty: 'creator_may_not_approve_extension', min_amount: 2000 },
  ]) {
    const res = await app.json<{ id: string; name: string }>('POST', '/v1/sod-rules', rule);
    expect(res.status).toBe(201);
    rules[rule.name] = { id: res.body.id, name: res.body.name };
  }
  const made = [
    {
      name: 'Gold customers: SSO at once',
      kinds: ['override'],
      features: ['sso'],
      auto_approve: true,
      conditions: { customer_attributes: { tier: 'gold' } },
    },
    {
      name: 'SSO: a manager',
      kinds: ['override'],
      features: ['sso'],
      stages: [{ approvers: ['mallory@vendor.com'] }],
    },
    {
      name: 'Big limit increases: manager then finance',
      kinds: ['override', 'grant'],
      features: ['api_calls'],
      conditions: { min_increase_percent: 50 },
      stages: [{ approvers: ['mallory@vendor.com'] }, { approvers: ['group:finance'] }],
    },
    {
      name: 'Small limit changes',
      kinds: ['override', 'grant'],
      features: ['api_calls'],
      auto_approve: true,
    },
    {
      name: 'Audit log: manager, escalate after a day',
      kinds: ['override'],
      features: ['audit_log'],
      stages: [
        {
          approvers: ['mallory@vendor.com'],
          timeout_hours: 24,
          on_timeout: 'escalate',
          escalate_to: ['vp@vendor.com'],
        },
      ],
    },
    {
      name: 'Refunds and add-ons: finance',
      kinds: ['override', 'addon'],
      features: ['refunds', 'exports_pack', 'approvals_pack'],
      stages: [{ approvers: ['group:finance'] }],
    },
  ];
  for (const p of made) {
    const res = await app.json<{ id: string }>('POST', '/v1/approval-policies', p);
    expect(res.status, p.name).toBe(201);
    policies[p.name] = res.body.id;
  }
});
afterAll(async () => app?.close());

describe('governance scenarios', () => {
  it('auto-approves an override for a customer the policy conditions pick, and stages it for others', async () => {
    const gold = await request('bob@vendor.com', {
      customer_id: 'stark',
      kind: 'override',
      change: { feature: 'sso', enabled: true, reason: 'pilot' },
      justification: 'Pilot',
    });
    expect(gold.status).toBe(201);
    expect(gold.body).toMatchObject({
      status: 'applied',
      policy_id: policies['Gold customers: SSO at once'],
    });
    expect(await check('stark', 'sso')).toBe(true);
    const plain = await request('bob@vendor.com', {
      customer_id: 'acme',
      kind: 'override',
      change: { feature: 'sso', enabled: true, reason: 'pilot' },
      justification: 'Pilot',
    });
    expect(plain.body).toMatchObject({ status: 'pending', policy_id: policies['SSO: a manager'] });
  });

  it('matches size conditions against what the customer holds: +20% auto, +100% through two stages', async () => {
    const small = await request('bob@vendor.com', {
      customer_id: 'globex',
      kind: 'override',
      change: { feature: 'api_calls', limit: 1200, reason: 'burst' },
      justification: 'Burst',
    });
    expect(small.body).toMatchObject({ status: 'applied', policy_id: policies['Small limit changes'] });
    // Now holding 1200: 2400 is +100%. (A minute later, so the newer override outranks the older.)
    clock.advance(60_000);
    const big = await request('bob@vendor.com', {
      customer_id: 'globex',
      kind: 'override',
      change: { feature: 'api_calls', limit: 2400, reason: 'launch' },
      justification: 'Launch week',
    });
    expect(big.body).toMatchObject({
      status: 'pending',
      stage: 0,
      policy_id: policies['Big limit increases: manager then finance'],
    });
    expect((await decide(big.body.id, 'approve', 'carol@vendor.com')).body.code).toBe('not_an_approver');
    expect((await decide(big.body.id, 'approve', 'mallory@vendor.com')).body).toMatchObject({
      status: 'pending',
      stage: 1,
    });
    const last = await decide(big.body.id, 'approve', 'carol@vendor.com');
    expect(last.body).toMatchObject({ status: 'applied', applied: { kind: 'override' } });
    const ents = await app.json<{ entitlements: Array<{ feature: string; limit?: number }> }>(
      'GET',
      '/v1/customers/globex/entitlements',
    );
    expect(ents.body.entitlements.find((e) => e.feature === 'api_calls')?.limit).toBe(2400);
    // A grant is measured by its credits against limit and credit held: 100 of 2400 is small.
    const grant = await request('bob@vendor.com', {
      customer_id: 'globex',
      kind: 'grant',
      change: { feature: 'api_calls', amount: 100, reason: 'goodwill' },
      justification: 'Goodwill',
    });
    expect(grant.body).toMatchObject({ status: 'applied', policy_id: policies['Small limit changes'] });
  });

  it('escalates a stage that times out, read through its deadline', async () => {
    const res = await request('bob@vendor.com', {
      customer_id: 'umbrella',
      kind: 'override',
      change: { feature: 'audit_log', enabled: true, reason: 'x' },
      justification: 'Audit',
    });
    expect(res.body.stage_deadline_at).toBe(new Date(clock.now().getTime() + 24 * HOUR).toISOString());
    clock.advance(23 * HOUR);
    expect((await runDueTransitions(app.runtime.deps)).accessRequestsSettled).toBe(0);
    clock.advance(HOUR);
    expect((await runDueTransitions(app.runtime.deps)).accessRequestsSettled).toBe(1);
    const read = await app.json<Req>('GET', `/v1/access-requests/${res.body.id}`);
    expect(read.body).toMatchObject({
      status: 'pending',
      stage_deadline_at: null,
      decisions: [{ decision: 'escalated' }],
    });
    expect((await runDueTransitions(app.runtime.deps)).accessRequestsSettled).toBe(0);
    expect((await decide(res.body.id, 'approve', 'vp@vendor.com')).body.status).toBe('applied');
  });

  it('refuses self-approval', async () => {
    const res = await request('mallory@vendor.com', {
      customer_id: 'initech',
      kind: 'override',
      change: { feature: 'sso', enabled: true, reason: 'x' },
      justification: 'mine',
    });
    const self = await decide(res.body.id, 'approve', 'mallory@vendor.com');
    expect(self.status).toBe(403);
    expect(self.body.code).toBe('self_approval');
  });

  it('ends just-in-time access by itself and the check flips to denied', async () => {
    expect(
      (
        await app.json('POST', '/v1/approval-policies', {
          name: 'Gold customers: exports at once',
          kinds: ['override'],
          features: ['exports'],
          auto_approve: true,
          conditions: { customer_attributes: { tier: 'gold' } },
        })
      ).status,
    ).toBe(201);
    const res = await request('bob@vendor.com', {
      customer_id: 'stark',
      kind: 'override',
      change: { feature: 'exports', enabled: true, reason: 'board pack' },
      justification: 'Board pack',
      duration_hours: 2,
    });
    expect(res.body.status).toBe('applied');
    expect(await check('stark', 'exports')).toBe(true);
    clock.advance(2 * HOUR + 1);
    expect(await check('stark', 'exports')).toBe(false);
    const jit = await request('bob@vendor.com', {
      customer_id: 'globex',
      kind: 'grant',
      change: { feature: 'api_calls', amount: 50, reason: 'trial' },
      justification: 'Trial credits',
      duration_hours: 1,
    });
    expect(jit.body.applied?.expires_at).toBe(new Date(clock.now().getTime() + HOUR).toISOString());
  });

  it('refuses a direct change that breaks a deny rule with 409 naming the rule, and changes nothing', async () => {
    const before = { version: await version('hooli'), overrides: await overrideCount('hooli') };
    const audits = (
      await app.json<{ data: unknown[] }>('GET', '/v1/audit-events?customer_id=hooli&limit=200')
    ).body.data.length;
    const res = await app.json<Req>('POST', '/v1/customers/hooli/overrides', {
      feature: 'approve_payment',
      enabled: true,
      reason: 'month end',
    });
    expect(res.status).toBe(409);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(res.body).toMatchObject({ code: 'sod_conflict', rule: rules['Maker-checker'] });
    // The add-on that would give the same feature is refused the same way.
    const addon = await app.json<Req>('POST', '/v1/customers/hooli/subscriptions', {
      plan: 'approvals_pack',
    });
    expect(addon.status).toBe(409);
    expect(addon.body.rule?.id).toBe(rules['Maker-checker']?.id);
    expect(await version('hooli')).toBe(before.version);
    expect(await overrideCount('hooli')).toBe(before.overrides);
    expect(
      (await app.json<{ data: unknown[] }>('GET', '/v1/customers/hooli/subscriptions')).body.data,
    ).toHaveLength(1);
    expect(
      (await app.json<{ data: unknown[] }>('GET', '/v1/audit-events?customer_id=hooli&limit=200')).body.data,
    ).toHaveLength(audits);
    expect(await check('hooli', 'approve_payment')).toBe(false);
    // An override that takes the conflicting feature away is fine.
    expect(
      (
        await app.json('POST', '/v1/customers/hooli/overrides', {
          feature: 'create_payment',
          enabled: false,
          reason: 'x',
        })
      ).status,
    ).toBe(201);
  });

  it('refuses to apply an approved request that breaks a deny rule', async () => {
    const res = await request('bob@vendor.com', {
      customer_id: 'initech',
      kind: 'addon',
      change: { plan: 'approvals_pack' },
      justification: 'Needs approvals',
    });
    expect(res.body).toMatchObject({
      status: 'pending',
      policy_id: policies['Refunds and add-ons: finance'],
    });
    const applied = await decide(res.body.id, 'approve', 'carol@vendor.com');
    expect(applied.status).toBe(409);
    expect(applied.body).toMatchObject({ code: 'sod_conflict', rule: rules['Maker-checker'] });
    expect((await app.json<Req>('GET', `/v1/access-requests/${res.body.id}`)).body.status).toBe('pending');
    expect(await check('initech', 'approve_payment')).toBe(false);
  });

  it('turns a direct change under a require_approval rule into an access request (202 + Location)', async () => {
    const before = await version('umbrella');
    const res = await app.request(
      'POST',
      '/v1/customers/umbrella/overrides',
      { feature: 'refunds', enabled: true, reason: 'chargeback backlog' },
      as('bob@vendor.com'),
    );
    expect(res.status).toBe(202);
    const filed = (await res.json()) as Req;
    expect(res.headers.get('location')).toBe(`/v1/access-requests/${filed.id}`);
    expect(filed).toMatchObject({ status: 'pending', kind: 'override', requested_by: 'bob@vendor.com' });
    expect(filed.justification).toContain(rules['Refunds need sign-off']!.id);
    expect(await version('umbrella')).toBe(before);
    expect(await check('umbrella', 'refunds')).toBe(false);
    // The same Idempotency-Key replays the 202 and files nothing more.
    const keyed = { headers: { ...as('bob@vendor.com').headers, 'idempotency-key': 'refunds-umbrella-1' } };
    const body = { feature: 'refunds', enabled: true, reason: 'retried' };
    const once = await app.json<Req>('POST', '/v1/customers/umbrella/overrides', body, keyed);
    const twice = await app.json<Req>('POST', '/v1/customers/umbrella/overrides', body, keyed);
    expect([once.status, twice.status]).toEqual([202, 202]);
    expect(twice.body.id).toBe(once.body.id);
    // (A replay carries the stored body and content type; Location comes with the first answer.)
    expect(once.headers.get('location')).toBe(`/v1/access-requests/${once.body.id}`);
    await decide(once.body.id, 'deny', 'dan@vendor.com');
    const approved = await decide(filed.id, 'approve', 'dan@vendor.com');
    expect(approved.body).toMatchObject({ status: 'applied', applied: { kind: 'override' } });
    expect(await check('umbrella', 'refunds')).toBe(true);
  });

  it('refuses a require_approval change with 409 when no approval policy governs it', async () => {
    await app.json('DELETE', `/v1/sod-rules/${rules['Maker-checker']!.id}`);
    const grant = await app.json<Req>('POST', '/v1/sod-rules', {
      name: 'Payments and API',
      features: ['approve_payment', 'api_calls'],
      action: 'require_approval',
    });
    // No policy governs approve_payment overrides: refused, naming the rule.
    const res = await app.json<Req>('POST', '/v1/customers/acme/overrides', {
      feature: 'approve_payment',
      enabled: true,
      reason: 'x',
    });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ code: 'sod_conflict', rule: { id: grant.body.id } });
    await app.json('DELETE', `/v1/sod-rules/${grant.body.id}`);
  });

  it('files and applies an add-on request', async () => {
    const res = await request('bob@vendor.com', {
      customer_id: 'acme',
      kind: 'addon',
      change: { plan: 'exports_pack' },
      justification: 'Quarter-end exports',
    });
    expect(res.status).toBe(201);
    const applied = await decide(res.body.id, 'approve', 'carol@vendor.com');
    expect(applied.body).toMatchObject({ status: 'applied', applied: { kind: 'addon' } });
    expect(await check('acme', 'exports')).toBe(true);
    const base = await request('bob@vendor.com', {
      customer_id: 'acme',
      kind: 'addon',
      change: { plan: 'pro' },
      justification: 'x',
    });
    expect(base.status).toBe(422);
    expect(base.body.errors?.map((e) => e.path)).toEqual(['change.plan']);
    const timed = await request('bob@vendor.com', {
      customer_id: 'acme',
      kind: 'addon',
      change: { plan: 'exports_pack' },
      justification: 'x',
      duration_hours: 2,
    });
    expect(timed.body.errors?.map((e) => e.path)).toEqual(['duration_hours']);
  });

  it('refuses the creator of a live exception approving its extension (403 sod_duty_conflict)', async () => {
    // carol (finance) creates a large exception herself...
    expect(
      (
        await app.json(
          'POST',
          '/v1/customers/initech/overrides',
          { feature: 'api_calls', limit: 5000, reason: 'launch' },
          as('carol@vendor.com'),
        )
      ).status,
    ).toBe(201);
    // ...then bob asks to extend it, and it reaches finance.
    const res = await request('bob@vendor.com', {
      customer_id: 'initech',
      kind: 'override',
      change: { feature: 'api_calls', limit: 10_000, reason: 'more' },
      justification: 'More launch',
    });
    expect((await decide(res.body.id, 'approve', 'mallory@vendor.com')).body.stage).toBe(1);
    const refused = await decide(res.body.id, 'approve', 'carol@vendor.com');
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({
      code: 'sod_duty_conflict',
      rule: { id: rules['No approving your own exception']!.id },
    });
    expect((await decide(res.body.id, 'approve', 'dan@vendor.com')).body.status).toBe('applied');
  });

  it('validates policies: unknown features and groups, naming the field', async () => {
    const res = await app.json<Req>('POST', '/v1/approval-policies', {
      name: 'bad',
      kinds: ['override'],
      features: ['sso', 'nope'],
      stages: [{ approvers: ['group:finance', 'group:ghosts'] }],
    });
    expect(res.status).toBe(422);
    expect(res.body.errors?.map((e) => e.path)).toEqual(['features.1', 'stages.0.approvers.1']);
  });

  it('pages access requests with filters; a forged cursor is 400', async () => {
    const first = await app.json<{ data: Req[]; next_cursor: string | null }>(
      'GET',
      '/v1/access-requests?limit=2',
    );
    expect(first.body.data).toHaveLength(2);
    const seen = first.body.data.map((r) => r.id);
    let cursor = first.body.next_cursor;
    while (cursor) {
      const next = await app.json<{ data: Req[]; next_cursor: string | null }>(
        'GET',
        `/v1/access-requests?limit=2&cursor=${cursor}`,
      );
      seen.push(...next.body.data.map((r) => r.id));
      cursor = next.body.next_cursor;
    }
    const all = await app.json<{ data: Req[] }>('GET', '/v1/access-requests?limit=200');
    expect(seen).toEqual(all.body.data.map((r) => r.id));
    const acme = await app.json<{ data: Array<Req & { customer_id: string }> }>(
      'GET',
      '/v1/access-requests?customer_id=acme&status=applied',
    );
    expect(acme.body.data.length).toBeGreaterThan(0);
    expect(acme.body.data.every((r) => r.customer_id === 'acme' && r.status === 'applied')).toBe(true);
    const forged = await app.json<Req>(
      'GET',
      `/v1/access-requests?cursor=${Buffer.from('{"at":-1}').toString('base64url')}`,
    );
    expect(forged.status).toBe(400);
    expect(forged.body.code).toBe('invalid_cursor');
  });

  it('lists and deletes actor groups', async () => {
    await app.json('PUT', '/v1/actor-groups/temp', { members: ['x@vendor.com'] });
    const list = await app.json<{ data: Array<{ key: string }> }>('GET', '/v1/actor-groups');
    expect(list.body.data.map((g) => g.key)).toEqual(['finance', 'temp']);
    expect((await app.json('DELETE', '/v1/actor-groups/temp')).status).toBe(200);
    expect((await app.json('GET', '/v1/actor-groups/temp')).status).toBe(404);
    expect((await app.json('DELETE', '/v1/actor-groups/temp')).status).toBe(404);
    await expectAdminOnly(app, 'GET', '/v1/actor-groups');
    await expectAdminOnly(app, 'DELETE', '/v1/actor-groups/finance');
  });

  it('extends a trialing subscription through a trial_extension request', async () => {
    await app.json('POST', '/v1/plans', {
      key: 'trial_pro',
      name: 'Trial Pro',
      trial: { days: 14, on_end: 'cancel' },
      entitlements: [{ feature: 'sso', enabled: true }],
    });
    expect(
      (
        await app.json('POST', '/v1/approval-policies', {
          name: 'Trial extensions: finance',
          kinds: ['trial_extension'],
          features: ['trial_pro'],
          stages: [{ approvers: ['group:finance'] }],
        })
      ).status,
    ).toBe(201);
    await app.json('PUT', '/v1/customers/wayne', { name: 'wayne' });
    const sub = await app.json<{ id: string; trial_ends_at: string }>(
      'POST',
      '/v1/customers/wayne/subscriptions',
      {
        plan: 'trial_pro',
      },
    );
    expect(sub.status).toBe(201);
    const res = await request('bob@vendor.com', {
      customer_id: 'wayne',
      kind: 'trial_extension',
      change: { subscription_id: sub.body.id, days: 7 },
      justification: 'Procurement is slow',
    });
    expect(res.status).toBe(201);
    const applied = await decide(res.body.id, 'approve', 'carol@vendor.com');
    const extended = new Date(new Date(sub.body.trial_ends_at).getTime() + 7 * 24 * HOUR).toISOString();
    expect(applied.body).toMatchObject({
      status: 'applied',
      applied: { kind: 'trial_extension', expires_at: extended },
    });
    const read = await app.json<{ status: string; trial_ends_at: string }>(
      'GET',
      `/v1/subscriptions/${sub.body.id}`,
    );
    expect(read.body).toMatchObject({ status: 'trialing', trial_ends_at: extended });
    // Another customer's subscription, or one not in a trial, is refused naming the field.
    const wrong = await request('bob@vendor.com', {
      customer_id: 'acme',
      kind: 'trial_extension',
      change: { subscription_id: sub.body.id, days: 7 },
      justification: 'x',
    });
    expect(wrong.status).toBe(422);
    expect(wrong.body.errors?.map((e) => e.path)).toEqual(['change.subscription_id']);
    clock.advance(22 * 24 * HOUR);
    const late = await request('bob@vendor.com', {
      customer_id: 'wayne',
      kind: 'trial_extension',
      change: { subscription_id: sub.body.id, days: 7 },
      justification: 'x',
    });
    expect(late.status).toBe(422);
  });

  it('settles timed-out stages in bounded batches, oldest deadline first', async () => {
    const ids: string[] = [];
    for (const customer of ['acme', 'globex', 'hooli']) {
      const res = await request('bob@vendor.com', {
        customer_id: customer,
        kind: 'override',
        change: { feature: 'audit_log', enabled: true, reason: 'x' },
        justification: 'Batch',
      });
      ids.push(res.body.id);
      clock.advance(1000);
    }
    clock.advance(24 * HOUR);
    const deps = app.runtime.deps;
    expect(await settleTimedOutRequests(deps, SCHEDULER_ACTOR, 2)).toBe(2);
    const states = async () =>
      Promise.all(
        ids.map(
          async (id) => (await app.json<Req>('GET', `/v1/access-requests/${id}`)).body.stage_deadline_at,
        ),
      );
    expect((await states()).map((d) => d === null)).toEqual([true, true, false]);
    expect(await settleTimedOutRequests(deps, SCHEDULER_ACTOR, 2)).toBe(1);
    expect(await settleTimedOutRequests(deps, SCHEDULER_ACTOR, 2)).toBe(0);
  });

  it('leaves an audit chain that verifies', async () => {
    expect((await app.json<{ ok: boolean }>('GET', '/v1/audit-events/verify')).body.ok).toBe(true);
    for (const action of [
      'sod_rule.created',
      'sod_rule.deleted',
      'actor_group.deleted',
      'access_request.escalated',
      'access_request.applied',
    ]) {
      const found = await app.json<{ data: unknown[] }>('GET', `/v1/audit-events?action=${action}`);
      expect(found.body.data.length, action).toBeGreaterThan(0);
    }
  });
});
