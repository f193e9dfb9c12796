import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManualClock } from '../../src/platform/clock.ts';
import { runDueTransitions } from '../../src/workers/scheduler.ts';
import { createTestApp, frozenClock, type TestApp } from '../helpers/harness.ts';
import { expectAdminOnly, expectHiddenFromOtherEnvironment } from '../helpers/security.ts';

let app: TestApp;
let clock: ManualClock;
const DAY = 86_400_000;

type Flag = {
  id: string;
  customer_id: string;
  kind: string;
  subject: string;
  detail: Record<string, unknown>;
  status: string;
  raised_at: string;
};
type Page = { data: Flag[]; next_cursor: string | null };
const ids = { acmeSso: '', initechOverride: '', umbrellaGrant: '' };

const scan = async () => (await app.json<{ raised: Flag[] }>('POST', '/v1/flags/scan')).body.raised;
const find = (flags: Flag[], kind: string, customer: string) =>
  flags.find((f) => f.kind === kind && f.customer_id === customer);

async function use(customer: string, value: number, key: string) {
  const res = await app.json(
    'POST',
    '/v1/usage',
    { customer_id: customer, feature: 'api_calls', value, idempotency_key: key },
    { key: app.checkKey },
  );
  expect(res.body).toMatchObject({ accepted: true });
}

beforeAll(async () => {
  clock = frozenClock('2026-02-01T09:00:00.000Z');
  app = await createTestApp({ clock, config: { webhooksAllowLoopback: true } });
  const hook = await app.json('POST', '/v1/webhook-endpoints', {
    url: 'http://127.0.0.1:9/hooks',
    event_types: ['flag.raised', 'review.created'],
  });
  expect(hook.status).toBe(201);
  for (const f of [
    { key: 'api_calls', name: 'API calls', type: 'metered' },
    { key: 'sso', name: 'SSO', type: 'boolean' },
  ])
    expect((await app.json('POST', '/v1/features', f)).status).toBe(201);
  expect(
    (
      await app.json('POST', '/v1/plans', {
        key: 'pro',
        name: 'Pro',
        entitlements: [
          { feature: 'sso', enabled: true },
          { feature: 'api_calls', limit: 100000, reset: 'month', overage: 'deny' },
        ],
      })
    ).status,
  ).toBe(201);
  const subs: Record<string, string> = {};
  for (const c of ['acme', 'initech', 'umbrella', 'globex']) {
    await app.json('PUT', `/v1/customers/${c}`, { name: c });
    const s = await app.json<{ id: string }>('POST', `/v1/customers/${c}/subscriptions`, { plan: 'pro' });
    expect(s.status).toBe(201);
    subs[c] = s.body.id;
  }
  // acme: an override repeating what Pro already gives.
  ids.acmeSso = (
    await app.json<{ id: string }>('POST', '/v1/customers/acme/overrides', {
      feature: 'sso',
      enabled: true,
      reason: 'belt and braces',
    })
  ).body.id;
  // globex: an ordinary exception (more than the plan), not flagged.
  await app.json('POST', '/v1/customers/globex/overrides', {
    feature: 'api_calls',
    limit: 500000,
    reason: 'big',
  });
  // initech: an exception that outlives its canceled subscription.
  ids.initechOverride = (
    await app.json<{ id: string }>('POST', '/v1/customers/initech/overrides', {
      feature: 'api_calls',
      limit: 500000,
      reason: 'migration',
    })
  ).body.id;
  expect(
    (await app.json('POST', `/v1/subscriptions/${subs.initech}/cancel`, { timing: 'immediate' })).status,
  ).toBe(200);
  // umbrella: cancels at period end, but holds a grant with no end.
  ids.umbrellaGrant = (
    await app.json<{ id: string }>('POST', '/v1/customers/umbrella/grants', {
      feature: 'api_calls',
      amount: 1000,
      reason: 'goodwill',
    })
  ).body.id;
  expect(
    (await app.json('POST', `/v1/subscriptions/${subs.umbrella}/cancel`, { timing: 'period_end' })).status,
  ).toBe(200);
  // acme: two weeks of 20 calls a day, then 500 today.
  for (let day = 0; day < 14; day++) {
    await use('acme', 20, `d${day}`);
    await use('globex', 30, `g${day}`);
    clock.advance(DAY);
  }
  await use('acme', 500, 'spike');
  await use('globex', 40, 'calm');
});
afterAll(async () => app?.close());

describe('anomaly flags', () => {
  let flagged: Flag[];
  let reviewId: string;

  it('raises overlap, orphan and spike flags, and an open collecting review takes the exceptions', async () => {
    const review = await app.json<{ id: string; items: Array<{ subject: { id: string } }> }>(
      'POST',
      '/v1/access-reviews',
      {
        name: 'Flagged exceptions',
        scope: { features: ['sso'] },
        reviewers: ['alice@vendor.com'],
        due_at: new Date(clock.now().getTime() + 30 * DAY).toISOString(),
        default_decision: 'keep',
        collect_flags: true,
      },
    );
    expect(review.status).toBe(201);
    reviewId = review.body.id;
    expect(review.body.items.map((i) => i.subject.id)).toEqual([ids.acmeSso]);

    flagged = await scan();
    expect(find(flagged, 'overlap', 'acme')).toMatchObject({
      subject: ids.acmeSso,
      status: 'open',
      detail: { relation: 'duplicate', subject: { kind: 'override', feature: 'sso' } },
    });
    expect(find(flagged, 'orphan', 'initech')).toMatchObject({
      subject: ids.initechOverride,
      detail: { reason: 'subscription_ended' },
    });
    expect(find(flagged, 'orphan', 'umbrella')).toMatchObject({
      subject: ids.umbrellaGrant,
      detail: { reason: 'outlives_subscription' },
    });
    expect(find(flagged, 'spike', 'acme')).toMatchObject({
      subject: 'api_calls@2026-02-15',
      detail: { usage: 500, baseline_mean: 20, factor: 5, partial_day: true },
    });
    expect(flagged).toHaveLength(4);

    const after = await app.json<{
      items: Array<{ subject: { id: string }; recommendation: string; flag_id: string | null }>;
    }>('GET', `/v1/access-reviews/${reviewId}`);
    const byId = new Map(after.body.items.map((i) => [i.subject.id, i]));
    expect(byId.get(ids.acmeSso)).toMatchObject({
      recommendation: 'remove',
      flag_id: find(flagged, 'overlap', 'acme')!.id,
    });
    expect(byId.get(ids.initechOverride)?.flag_id).toBe(find(flagged, 'orphan', 'initech')!.id);
    expect(byId.get(ids.umbrellaGrant)).toBeDefined();
  });

  it('does not raise a finding twice, from the route or the scheduler', async () => {
    expect(await scan()).toEqual([]);
    expect((await runDueTransitions(app.runtime.deps)).anomalyFlagsRaised).toBe(0);
    const all = await app.json<Page>('GET', '/v1/flags?limit=200');
    expect(all.body.data).toHaveLength(4);
  });

  it('filters and pages the list, and reads one flag', async () => {
    const spikes = await app.json<Page>('GET', '/v1/flags?kind=spike');
    expect(spikes.body.data.map((f) => f.customer_id)).toEqual(['acme']);
    const initech = await app.json<Page>('GET', '/v1/flags?customer_id=initech&status=open');
    expect(initech.body.data.map((f) => f.kind)).toEqual(['orphan']);
    const first = await app.json<Page>('GET', '/v1/flags?limit=3');
    expect(first.body.data).toHaveLength(3);
    const rest = await app.json<Page>('GET', `/v1/flags?limit=3&cursor=${first.body.next_cursor}`);
    expect(rest.body.data).toHaveLength(1);
    expect(rest.body.next_cursor).toBeNull();
    const one = await app.json<Flag>('GET', `/v1/flags/${flagged[0]!.id}`);
    expect(one.body).toEqual(flagged[0]);
    const bad = await app.json<{ errors: Array<{ path: string }> }>('GET', '/v1/flags?kind=weird');
    expect(bad.status).toBe(400);
  });

  it('dismisses a flag for good, and raises a resolved one again while it still holds', async () => {
    const overlap = find(flagged, 'overlap', 'acme')!;
    const orphan = find(flagged, 'orphan', 'initech')!;
    const dismissed = await app.json<Flag>('POST', `/v1/flags/${overlap.id}/dismiss`, {
      comment: 'intended',
    });
    expect(dismissed.body).toMatchObject({ status: 'dismissed', comment: 'intended' });
    expect((await app.json<{ code: string }>('POST', `/v1/flags/${overlap.id}/resolve`, {})).body.code).toBe(
      'flag_closed',
    );
    expect((await app.json<Flag>('POST', `/v1/flags/${orphan.id}/resolve`, {})).body.status).toBe('resolved');
    const again = await scan();
    expect(again.map((f) => `${f.kind}:${f.customer_id}`)).toEqual(['orphan:initech']);
    expect(again[0]!.id).not.toBe(orphan.id);
    // Once the exception is gone, nothing more is found.
    await app.json('DELETE', `/v1/overrides/${ids.initechOverride}`);
    await app.json('POST', `/v1/flags/${again[0]!.id}/resolve`, {});
    expect(await scan()).toEqual([]);
  });

  it('flags holdings that a later SoD rule forbids, once', async () => {
    for (const f of [
      { key: 'create_payment', name: 'Create payments', type: 'boolean' },
      { key: 'approve_payment', name: 'Approve payments', type: 'boolean' },
    ])
      expect((await app.json('POST', '/v1/features', f)).status).toBe(201);
    await app.json('PUT', '/v1/customers/hooli', { name: 'Hooli' });
    for (const feature of ['create_payment', 'approve_payment'])
      expect(
        (
          await app.json('POST', '/v1/customers/hooli/overrides', {
            feature,
            enabled: true,
            reason: 'legacy',
          })
        ).status,
      ).toBe(201);
    const rule = await app.json<{ id: string }>('POST', '/v1/sod-rules', {
      name: 'Maker-checker',
      features: ['create_payment', 'approve_payment'],
      action: 'deny',
    });
    expect(rule.status).toBe(201);
    const raised = await scan();
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({
      customer_id: 'hooli',
      kind: 'sod',
      subject: rule.body.id,
      detail: {
        rule: { name: 'Maker-checker', action: 'deny' },
        held: ['create_payment', 'approve_payment'],
      },
    });
    expect(await scan()).toEqual([]);
  });

  it('emits flag.raised and audits everything; the chain verifies', async () => {
    const rows = await app.runtime.deps.db
      .selectFrom('outbox')
      .select(['topic', 'customer_id'])
      .where('topic', '=', 'flag.raised')
      .execute();
    expect(rows).toHaveLength(6);
    const audit = await app.json<{ data: Array<{ action: string }> }>(
      'GET',
      '/v1/audit-events?action=flag.raised&limit=200',
    );
    expect(audit.body.data).toHaveLength(6);
    const verify = await app.json<{ ok: boolean }>('GET', '/v1/audit-events/verify');
    expect(verify.body.ok).toBe(true);
    // Webhook endpoints receive them under the same type.
    await app.runtime.dispatcher.drain();
    const deliveries = await app.runtime.deps.db
      .selectFrom('webhook_deliveries')
      .select('event_type')
      .execute();
    const types = deliveries.map((d) => d.event_type);
    expect(types.filter((t) => t === 'flag.raised')).toHaveLength(6);
    expect(types.filter((t) => t === 'review.created')).toHaveLength(1);
  });

  it('is admin-only and walled by environment', async () => {
    const id = flagged[0]!.id;
    await expectAdminOnly(app, 'GET', '/v1/flags');
    await expectAdminOnly(app, 'GET', `/v1/flags/${id}`);
    await expectAdminOnly(app, 'POST', '/v1/flags/scan');
    await expectAdminOnly(app, 'POST', `/v1/flags/${id}/dismiss`, {});
    await expectHiddenFromOtherEnvironment(app, 'GET', `/v1/flags/${id}`);
    await expectHiddenFromOtherEnvironment(app, 'POST', `/v1/flags/${id}/resolve`, {});
  });
});
