import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManualClock } from '../../src/platform/clock.ts';
import { runDueTransitions } from '../../src/workers/scheduler.ts';
import { createTestApp, frozenClock, type TestApp } from '../helpers/harness.ts';
import { expectAdminOnly } from '../helpers/security.ts';

let app: TestApp;
let clock: ManualClock;
const HOUR = 3_600_000;

type Req = {
  id: string;
  status: string;
  stage: number;
  policy_id: string;
  requested_by: string;
  applied?: { kind: string; id: string; expires_at: string | null };
  decisions: Array<Record<string, unknown>>;
};

const as = (person: string) => ({ headers: { 'tessera-actor': person } });

async function request(person: string, body: Record<string, unknown>) {
  return app.json<Req & { code?: string; errors?: Array<{ path: string }> }>(
    'POST',
    '/v1/access-requests',
    body,
    as(person),
  );
}

async function decide(id: string, decision: 'approve' | 'deny', person: string, comment?: string) {
  return app.json<Req & { code?: string }>(
    'POST',
    `/v1/access-requests/${id}/${decision}`,
    comment ? { comment } : {},
    as(person),
  );
}

const check = async (customer: string, feature: string) =>
  (
    await app.json<{ allowed: boolean }>(
      'POST',
      '/v1/check',
      { customer_id: customer, feature },
      { key: app.checkKey },
    )
  ).body.allowed;

beforeAll(async () => {
  clock = frozenClock('2026-03-10T12:00:00.000Z');
  app = await createTestApp({ clock });
  for (const f of [
    { key: 'sso', name: 'SSO', type: 'boolean' },
    { key: 'audit_log', name: 'Audit log', type: 'boolean' },
    { key: 'exports', name: 'Exports', type: 'boolean' },
    { key: 'api_calls', name: 'API calls', type: 'metered' },
    { key: 'priority_support', name: 'Priority support', type: 'boolean' },
  ]) {
    expect((await app.json('POST', '/v1/features', f)).status).toBe(201);
  }
  for (const c of ['acme', 'globex', 'initech', 'umbrella'])
    await app.json('PUT', `/v1/customers/${c}`, { name: c });
  expect((await app.json('PUT', '/v1/actor-groups/finance', { members: ['carol@vendor.com'] })).status).toBe(
    201,
  );
  const policies = [
    { name: 'SSO trials', kinds: ['override'], features: ['sso'], auto_approve: true },
    {
      name: 'Audit log: manager then finance',
      kinds: ['override', 'grant'],
      features: ['audit_log', 'api_calls'],
      stages: [{ approvers: ['mallory@vendor.com'] }, { approvers: ['group:finance'] }],
    },
    {
      name: 'Exports: manager, escalate after a day',
      kinds: ['override'],
      features: ['exports'],
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
      name: 'Priority support: finance within a day',
      kinds: ['override'],
      features: ['priority_support'],
      stages: [{ approvers: ['group:finance'], timeout_hours: 24, on_timeout: 'deny' }],
    },
  ];
  for (const p of policies) expect((await app.json('POST', '/v1/approval-policies', p)).status).toBe(201);
});
afterAll(async () => app?.close());

describe('access requests', () => {
  it('auto-approves an override by policy and applies it at once', async () => {
    const res = await request('bob@vendor.com', {
      customer_id: 'acme',
      kind: 'override',
      change: { feature: 'sso', enabled: true, reason: 'pilot' },
      justification: 'Security review for the pilot',
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      status: 'applied',
      requested_by: 'bob@vendor.com',
      applied: { kind: 'override' },
    });
    expect(await check('acme', 'sso')).toBe(true);
  });

  it('walks a two-stage chain (person, then group) and applies on the last approval', async () => {
    const res = await request('bob@vendor.com', {
      customer_id: 'globex',
      kind: 'override',
      change: { feature: 'audit_log', enabled: true, reason: 'compliance' },
      justification: 'SOC 2 audit',
    });
    expect(res.body).toMatchObject({ status: 'pending', stage: 0 });
    expect(await check('globex', 'audit_log')).toBe(false);
    // carol is in finance, the second stage, not the first.
    expect((await decide(res.body.id, 'approve', 'carol@vendor.com')).body.code).toBe('not_an_approver');
    const first = await decide(res.body.id, 'approve', 'mallory@vendor.com', 'ok by me');
    expect(first.body).toMatchObject({ status: 'pending', stage: 1 });
    const last = await decide(res.body.id, 'approve', 'carol@vendor.com');
    expect(last.status).toBe(200);
    expect(last.body).toMatchObject({ status: 'applied', applied: { kind: 'override' } });
    expect(await check('globex', 'audit_log')).toBe(true);
    const again = await decide(res.body.id, 'deny', 'carol@vendor.com');
    expect(again.status).toBe(409);
  });

  it('refuses self-approval with 403 self_approval', async () => {
    const res = await request('mallory@vendor.com', {
      customer_id: 'initech',
      kind: 'override',
      change: { feature: 'audit_log', enabled: true, reason: 'x' },
      justification: 'mine',
    });
    const self = await decide(res.body.id, 'approve', 'mallory@vendor.com');
    expect(self.status).toBe(403);
    expect(self.body.code).toBe('self_approval');
    const denied = await decide(res.body.id, 'deny', 'bob@vendor.com');
    expect(denied.body.code).toBe('not_an_approver');
    expect((await app.json<Req>('GET', `/v1/access-requests/${res.body.id}`)).body.status).toBe('pending');
  });

  it('escalates a stage that times out, on the scheduler run', async () => {
    const res = await request('bob@vendor.com', {
      customer_id: 'umbrella',
      kind: 'override',
      change: { feature: 'exports', enabled: true, reason: 'x' },
      justification: 'Quarter end',
    });
    clock.advance(25 * HOUR);
    const run = await runDueTransitions(app.runtime.deps);
    expect(run.accessRequestsSettled).toBe(1);
    expect((await decide(res.body.id, 'approve', 'mallory@vendor.com')).body.code).toBe('not_an_approver');
    const approved = await decide(res.body.id, 'approve', 'vp@vendor.com');
    expect(approved.body).toMatchObject({ status: 'applied' });
    expect(approved.body.decisions.map((d) => d.decision)).toEqual(['escalated', 'approved']);
  });

  it('grants just-in-time access that ends by itself, shown in the entitlements', async () => {
    const res = await request('bob@vendor.com', {
      customer_id: 'initech',
      kind: 'override',
      change: { feature: 'sso', enabled: true, reason: 'incident' },
      justification: 'On-call debugging',
      duration_hours: 4,
    });
    expect(res.body.status).toBe('applied');
    const endsAt = new Date(clock.now().getTime() + 4 * HOUR).toISOString();
    expect(res.body.applied?.expires_at).toBe(endsAt);
    expect(await check('initech', 'sso')).toBe(true);
    const ents = await app.json<{ entitlements: Array<Record<string, unknown>> }>(
      'GET',
      '/v1/customers/initech/entitlements',
      undefined,
      { key: app.checkKey },
    );
    expect(JSON.stringify(ents.body.entitlements.find((e) => e.feature === 'sso'))).toContain(endsAt);
    clock.advance(4 * HOUR + 1);
    expect(await check('initech', 'sso')).toBe(false);
  });

  it('records a denial with its comment and applies nothing', async () => {
    const res = await request('bob@vendor.com', {
      customer_id: 'umbrella',
      kind: 'override',
      change: { feature: 'audit_log', enabled: true, reason: 'x' },
      justification: 'nice to have',
    });
    const denied = await decide(res.body.id, 'deny', 'mallory@vendor.com', 'not needed');
    expect(denied.body).toMatchObject({
      status: 'denied',
      decisions: [{ decision: 'denied', comment: 'not needed' }],
    });
    expect(denied.body.applied).toBeUndefined();
    expect(await check('umbrella', 'audit_log')).toBe(false);
  });

  it('expires a request whose stage times out with on_timeout deny', async () => {
    const res = await request('bob@vendor.com', {
      customer_id: 'globex',
      kind: 'override',
      change: { feature: 'priority_support', enabled: true, reason: 'x' },
      justification: 'escalation',
    });
    clock.advance(23 * HOUR);
    expect((await runDueTransitions(app.runtime.deps)).accessRequestsSettled).toBe(0);
    clock.advance(HOUR);
    expect((await runDueTransitions(app.runtime.deps)).accessRequestsSettled).toBe(1);
    const read = await app.json<Req>('GET', `/v1/access-requests/${res.body.id}`);
    expect(read.body).toMatchObject({ status: 'expired', decisions: [{ decision: 'timed_out' }] });
    expect((await decide(res.body.id, 'approve', 'carol@vendor.com')).status).toBe(409);
    expect(await check('globex', 'priority_support')).toBe(false);
  });

  it('applies an approved credit grant through the two-stage policy', async () => {
    const policies = await app.json<{ data: Array<{ id: string; name: string }> }>(
      'GET',
      '/v1/approval-policies',
    );
    const res = await request('bob@vendor.com', {
      customer_id: 'acme',
      kind: 'grant',
      change: { feature: 'api_calls', amount: 100, reason: 'x' },
      justification: 'load test',
    });
    expect(res.body.policy_id).toBe(policies.body.data[1]?.id);
    const approved = await decide(res.body.id, 'approve', 'mallory@vendor.com');
    expect(approved.body.stage).toBe(1);
    const grant = await decide(res.body.id, 'approve', 'carol@vendor.com');
    expect(grant.body).toMatchObject({ status: 'applied', applied: { kind: 'grant', expires_at: null } });
  });

  it('refuses bad requests: no person, no policy, a bad change', async () => {
    const body = {
      customer_id: 'acme',
      kind: 'override',
      change: { feature: 'sso', enabled: true, reason: 'x' },
      justification: 'j',
    };
    const anonymous = await app.json<{ errors: Array<{ path: string }> }>(
      'POST',
      '/v1/access-requests',
      body,
    );
    expect(anonymous.status).toBe(400);
    expect(anonymous.body.errors[0]?.path).toBe('Tessera-Actor');
    const none = await request('bob', {
      ...body,
      kind: 'grant',
      change: { feature: 'sso', amount: 1, reason: 'x' },
    });
    expect(none.status).toBe(422);
    expect(none.body.code).toBe('no_policy');
    const bad = await request('bob', { ...body, change: { feature: 'sso', enabled: 'yes', reason: 'x' } });
    expect(bad.status).toBe(400);
    expect(bad.body.errors?.map((e) => e.path)).toContain('change.enabled');
    const missing = await request('bob', { ...body, customer_id: 'nobody' });
    expect(missing.status).toBe(404);
    const list = await app.json<{ data: Req[] }>('GET', '/v1/access-requests?status=pending');
    expect(list.body.data.every((r) => r.status === 'pending')).toBe(true);
  });

  it('is admin-only', async () => {
    await expectAdminOnly(app, 'POST', '/v1/approval-policies', {
      name: 'x',
      kinds: ['override'],
      auto_approve: true,
    });
    await expectAdminOnly(app, 'POST', '/v1/access-requests', {});
    await expectAdminOnly(app, 'GET', '/v1/access-requests');
  });

  it('leaves an audit chain that verifies, with every step recorded', async () => {
    const verify = await app.json<{ ok: boolean }>('GET', '/v1/audit-events/verify');
    expect(verify.body.ok).toBe(true);
    const events = await app.json<{ data: Array<{ action: string }> }>(
      'GET',
      '/v1/audit-events?action=access_request.*&limit=200',
    );
    const actions = new Set(events.body.data.map((e) => e.action));
    for (const a of ['created', 'approved', 'applied', 'escalated'])
      expect(actions.has(`access_request.${a}`)).toBe(true);
  });
});
