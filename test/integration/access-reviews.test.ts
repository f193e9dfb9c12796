import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManualClock } from '../../src/platform/clock.ts';
import { runDueTransitions } from '../../src/workers/scheduler.ts';
import { createTestApp, frozenClock, type TestApp } from '../helpers/harness.ts';
import { expectAdminOnly, expectHiddenFromOtherEnvironment } from '../helpers/security.ts';

let app: TestApp;
let clock: ManualClock;
const DAY = 86_400_000;

type Item = {
  id: string;
  subject: { kind: string; id: string; customer_id: string; feature: string };
  recommendation: string;
  decision: string | null;
  decided_via: string | null;
  evidence: Record<string, unknown>;
};
type Review = {
  id: string;
  status: string;
  due_at: string;
  previous_id: string | null;
  recurrence: string;
  items: Item[];
  item_counts: { total: number; undecided: number };
  code?: string;
};

const as = (person: string) => ({ headers: { 'tessera-actor': person } });
const overrides: Record<string, string> = {};

async function checkAllowed(customer: string, quantity: number) {
  const res = await app.json<{ allowed: boolean; reason: string }>(
    'POST',
    '/v1/check',
    { customer_id: customer, feature: 'api_calls', quantity },
    { key: app.checkKey },
  );
  return res.body.allowed;
}

const itemOf = (review: Review, customer: string) =>
  review.items.find((i) => i.subject.customer_id === customer)!;

beforeAll(async () => {
  clock = frozenClock('2026-01-05T10:00:00.000Z');
  app = await createTestApp({ clock });
  for (const f of [
    { key: 'api_calls', name: 'API calls', type: 'metered' },
    { key: 'sso', name: 'SSO', type: 'boolean' },
  ])
    expect((await app.json('POST', '/v1/features', f)).status).toBe(201);
  const plan = await app.json('POST', '/v1/plans', {
    key: 'basic',
    name: 'Basic',
    entitlements: [{ feature: 'api_calls', limit: 1000, reset: 'month', overage: 'deny' }],
  });
  expect(plan.status).toBe(201);
  for (const c of ['acme', 'globex', 'initech']) {
    await app.json('PUT', `/v1/customers/${c}`, { name: c });
    expect((await app.json('POST', `/v1/customers/${c}/subscriptions`, { plan: 'basic' })).status).toBe(201);
  }
  for (const c of ['acme', 'globex']) {
    const o = await app.json<{ id: string }>('POST', `/v1/customers/${c}/overrides`, {
      feature: 'api_calls',
      limit: 5000,
      reason: 'Launch partner',
    });
    expect(o.status).toBe(201);
    overrides[c] = o.body.id;
  }
  const sso = await app.json<{ id: string }>('POST', '/v1/customers/initech/overrides', {
    feature: 'sso',
    enabled: true,
    reason: 'Pilot',
  });
  overrides.initech = sso.body.id;
  expect((await app.json('PUT', '/v1/actor-groups/auditors', { members: ['carol@vendor.com'] })).status).toBe(
    201,
  );
  clock.advance(DAY);
  const used = await app.json(
    'POST',
    '/v1/usage',
    { customer_id: 'acme', feature: 'api_calls', value: 1200, idempotency_key: 'u1' },
    { key: app.checkKey },
  );
  expect(used.body).toMatchObject({ accepted: true });
  clock.advance(20 * DAY);
});
afterAll(async () => app?.close());

describe('access reviews', () => {
  let review: Review;

  it('opens a campaign over the live exceptions in scope, with usage-based recommendations', async () => {
    const res = await app.json<Review>(
      'POST',
      '/v1/access-reviews',
      {
        name: 'Quarterly exceptions',
        scope: { kinds: ['override'] },
        reviewers: ['alice@vendor.com', 'group:auditors'],
        due_at: new Date(clock.now().getTime() + 14 * DAY).toISOString(),
        default_decision: 'recommendation',
        recurrence: 'quarterly',
      },
      as('alice@vendor.com'),
    );
    expect(res.status).toBe(201);
    review = res.body;
    expect(review).toMatchObject({
      status: 'open',
      recurrence: 'quarterly',
      item_counts: { total: 3, undecided: 3 },
    });
    expect(itemOf(review, 'acme')).toMatchObject({
      subject: { kind: 'override', id: overrides.acme, feature: 'api_calls' },
      recommendation: 'keep',
      decision: null,
      evidence: { basis: 'usage_ledger', used: 1200, window_days: 90 },
    });
    expect(itemOf(review, 'globex')).toMatchObject({ recommendation: 'remove', evidence: { used: 0 } });
    // A boolean feature leaves no usage to judge by.
    expect(itemOf(review, 'initech')).toMatchObject({
      recommendation: 'keep',
      evidence: { basis: 'no_usage_signal' },
    });
  });

  it('scopes by feature and grant amount', async () => {
    await app.json('POST', '/v1/customers/acme/grants', {
      feature: 'api_calls',
      amount: 50,
      reason: 'small',
    });
    await app.json('POST', '/v1/customers/acme/grants', {
      feature: 'api_calls',
      amount: 5000,
      reason: 'big',
    });
    const res = await app.json<Review>('POST', '/v1/access-reviews', {
      name: 'Big credits',
      scope: { kinds: ['grant'], features: ['api_calls'], min_amount: 1000 },
      reviewers: ['alice@vendor.com'],
      due_at: new Date(clock.now().getTime() + DAY).toISOString(),
      default_decision: 'keep',
    });
    expect(res.status).toBe(201);
    expect(res.body.items.map((i) => i.subject.kind)).toEqual(['grant']);
    expect(res.body.recurrence).toBe('none');
  });

  it('refuses bad input naming the field, and changes nothing', async () => {
    const base = {
      name: 'x',
      scope: {},
      reviewers: ['alice@vendor.com'],
      due_at: new Date(clock.now().getTime() + DAY).toISOString(),
      default_decision: 'keep',
    };
    const before = await app.json<{ data: unknown[] }>('GET', '/v1/access-reviews?limit=200');
    for (const [body, path] of [
      [{ ...base, due_at: '2020-01-01T00:00:00Z' }, 'due_at'],
      [{ ...base, default_decision: 'maybe' }, 'default_decision'],
      [{ ...base, reviewers: ['not a person'] }, 'reviewers[0]'],
      [{ ...base, scope: { kinds: ['addon'] } }, 'scope.kinds[0]'],
      [{ ...base, recurrence: 'weekly' }, 'recurrence'],
    ] as const) {
      const res = await app.json<{ errors: Array<{ path: string }> }>('POST', '/v1/access-reviews', body);
      expect(res.status, path).toBe(400);
      expect(res.body.errors.map((e) => e.path)).toContain(path);
    }
    const after = await app.json<{ data: unknown[] }>('GET', '/v1/access-reviews?limit=200');
    expect(after.body.data.length).toBe(before.body.data.length);
  });

  it('lets only a reviewer decide, once', async () => {
    const acme = itemOf(review, 'acme');
    const path = `/v1/access-reviews/${review.id}/items/${acme.id}/decide`;
    const stranger = await app.json<{ code: string }>(
      'POST',
      path,
      { decision: 'remove' },
      as('bob@vendor.com'),
    );
    expect(stranger.status).toBe(403);
    expect(stranger.body.code).toBe('not_a_reviewer');
    const anonymous = await app.json<{ errors: Array<{ path: string }> }>('POST', path, { decision: 'keep' });
    expect(anonymous.status).toBe(400);
    expect(anonymous.body.errors[0]?.path).toBe('Tessera-Actor');
    expect(await checkAllowed('acme', 3000)).toBe(true);
    // carol reviews through the auditors group.
    const kept = await app.json<Item>(
      'POST',
      path,
      { decision: 'keep', comment: 'in use' },
      as('carol@vendor.com'),
    );
    expect(kept.status).toBe(200);
    expect(kept.body).toMatchObject({
      decision: 'keep',
      decided_via: 'reviewer',
      decided_by: 'carol@vendor.com',
    });
    const again = await app.json<{ code: string }>(
      'POST',
      path,
      { decision: 'remove' },
      as('alice@vendor.com'),
    );
    expect(again.status).toBe(409);
    expect(again.body.code).toBe('item_decided');
    const missing = await app.json(
      'POST',
      `/v1/access-reviews/${review.id}/items/rvi_nope/decide`,
      { decision: 'keep' },
      as('alice@vendor.com'),
    );
    expect(missing.status).toBe(404);
  });

  it('removes an exception when a reviewer says so', async () => {
    const initech = itemOf(review, 'initech');
    const res = await app.json<Item>(
      'POST',
      `/v1/access-reviews/${review.id}/items/${initech.id}/decide`,
      { decision: 'remove' },
      as('alice@vendor.com'),
    );
    expect(res.body.decision).toBe('remove');
    const sso = await app.json<{ allowed: boolean }>(
      'POST',
      '/v1/check',
      { customer_id: 'initech', feature: 'sso' },
      { key: app.checkKey },
    );
    expect(sso.body.allowed).toBe(false);
  });

  it('closes the quarterly campaign when due: the unused exception goes by default, the next quarter opens', async () => {
    expect(await checkAllowed('globex', 3000)).toBe(true);
    clock.advance(13 * DAY);
    // Only the one-off "Big credits" campaign is due yet.
    expect((await runDueTransitions(app.runtime.deps)).accessReviewsClosed).toBe(1);
    expect((await app.json<Review>('GET', `/v1/access-reviews/${review.id}`)).body.status).toBe('open');
    clock.advance(DAY);
    const run = await runDueTransitions(app.runtime.deps);
    expect(run.accessReviewsClosed).toBe(1);
    const closed = await app.json<Review>('GET', `/v1/access-reviews/${review.id}`);
    expect(closed.body).toMatchObject({ status: 'completed', item_counts: { total: 3, undecided: 0 } });
    expect(itemOf(closed.body, 'globex')).toMatchObject({ decision: 'remove', decided_via: 'default' });
    expect(itemOf(closed.body, 'acme')).toMatchObject({ decision: 'keep', decided_via: 'reviewer' });
    // The unused exception is gone: globex is back on the plan's 1,000.
    expect(await checkAllowed('globex', 3000)).toBe(false);
    expect(await checkAllowed('acme', 3000)).toBe(true);
    const list = await app.json<{ data: Review[] }>('GET', '/v1/access-reviews?status=open');
    const next = list.body.data.find((r) => r.previous_id === review.id);
    expect(next).toBeDefined();
    expect(next!.due_at).toBe('2026-05-09T10:00:00.000Z');
    expect(next!.item_counts).toEqual({ total: 1, undecided: 1 });
    const full = await app.json<Review>('GET', `/v1/access-reviews/${next!.id}`);
    expect(full.body.items.map((i) => i.subject.id)).toEqual([overrides.acme]);
    const late = await app.json<{ code: string }>(
      'POST',
      `/v1/access-reviews/${review.id}/items/${itemOf(review, 'acme').id}/decide`,
      { decision: 'remove' },
      as('alice@vendor.com'),
    );
    expect(late.status).toBe(409);
    expect(late.body.code).toBe('review_closed');
    // A second run closes nothing more.
    expect((await runDueTransitions(app.runtime.deps)).accessReviewsClosed).toBe(0);
  });

  it('pages the list', async () => {
    const first = await app.json<{ data: Review[]; next_cursor: string | null }>(
      'GET',
      '/v1/access-reviews?limit=1',
    );
    expect(first.body.data).toHaveLength(1);
    expect(first.body.data[0]!.items).toBeUndefined();
    const second = await app.json<{ data: Review[] }>(
      'GET',
      `/v1/access-reviews?limit=1&cursor=${first.body.next_cursor}`,
    );
    expect(second.body.data[0]!.id > first.body.data[0]!.id).toBe(true);
  });

  it('audits and emits every step, and the chain verifies', async () => {
    const topics = await app.runtime.deps.db
      .selectFrom('outbox')
      .select('topic')
      .where('topic', 'like', 'review.%')
      .execute();
    const seen = new Set(topics.map((t) => t.topic));
    expect([...seen].sort()).toEqual(['review.completed', 'review.created', 'review.item_decided']);
    const audit = await app.json<{ data: Array<{ action: string }> }>(
      'GET',
      '/v1/audit-events?action=review.item_decided&limit=200',
    );
    expect(audit.body.data.length).toBeGreaterThanOrEqual(4);
    const verify = await app.json<{ ok: boolean }>('GET', '/v1/audit-events/verify');
    expect(verify.body.ok).toBe(true);
  });

  it('is admin-only and walled by environment', async () => {
    await expectAdminOnly(app, 'GET', '/v1/access-reviews');
    await expectAdminOnly(app, 'GET', `/v1/access-reviews/${review.id}`);
    await expectAdminOnly(app, 'POST', `/v1/access-reviews/${review.id}/items/x/decide`, {
      decision: 'keep',
    });
    await expectHiddenFromOtherEnvironment(app, 'GET', `/v1/access-reviews/${review.id}`);
  });
});
