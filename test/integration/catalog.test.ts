import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { latestPlanVersion, loadFeatures, loadPlanVersion } from '../../src/modules/catalog/repo.ts';
import { createTestApp, type TestApp } from '../helpers/harness.ts';
import { expectAdminOnly, expectHiddenFromOtherEnvironment } from '../helpers/security.ts';

let app: TestApp;
beforeAll(async () => {
  app = await createTestApp();
});
afterAll(async () => app?.close());

type Body = Record<string, unknown>;
type Problem = { code: string; errors: Array<{ path: string; message: string }> };
let seq = 0;
const uniq = (prefix: string) => `${prefix}-${++seq}`;

async function count(table: 'features' | 'plans' | 'plan_versions' | 'audit_events'): Promise<number> {
  const row = await app.runtime.deps.db
    .selectFrom(table)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function feature(type: 'boolean' | 'config' | 'metered', extra: Body = {}): Promise<string> {
  const key = uniq(type);
  const res = await app.json('POST', '/v1/features', { key, name: key, type, ...extra });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return key;
}

/** A boolean, a config and a metered feature, fresh for each caller. */
async function catalog() {
  return { sso: await feature('boolean'), theme: await feature('config'), calls: await feature('metered') };
}

const metered = (key: string, limit: number | null = 100) => ({
  feature: key,
  limit,
  reset: 'month',
  overage: 'deny',
});

describe('features', () => {
  it('creates each type, answers 409 for a key taken in this environment only', async () => {
    const res = await app.json<Body>('POST', '/v1/features', {
      key: 'api.calls',
      name: 'API calls',
      type: 'metered',
      unit: 'call',
      aggregation: 'max',
    });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ key: 'api.calls', type: 'metered', unit: 'call', aggregation: 'max' });
    expect(res.body).toMatchObject({
      archived: false,
      description: null,
      id: expect.stringMatching(/^feat_/),
    });
    const flag = await app.json<Body>('POST', '/v1/features', { key: 'sso', name: 'SSO', type: 'boolean' });
    expect(flag.body).toMatchObject({ aggregation: null, unit: null });
    const sum = await app.json<Body>('POST', '/v1/features', {
      key: 'seats',
      name: 'Seats',
      type: 'metered',
    });
    expect(sum.body.aggregation).toBe('sum');
    expect((await app.json<Body>('GET', '/v1/features/api.calls')).body).toEqual(res.body);

    const again = await app.json('POST', '/v1/features', { key: 'sso', name: 'x', type: 'config' });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'feature_exists' });
    const live = await app.json(
      'POST',
      '/v1/features',
      { key: 'sso', name: 'x', type: 'boolean' },
      { key: app.liveAdminKey },
    );
    expect(live.status).toBe(201);
  });

  it('lets exactly one of several concurrent creations of a key win', async () => {
    const key = uniq('contested');
    const results = await Promise.all(
      Array.from({ length: 6 }, () => app.json('POST', '/v1/features', { key, name: 'C', type: 'boolean' })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
  });

  it('rejects bad input naming the field, and writes nothing', async () => {
    const before = await count('features');
    const cases: Array<[unknown, string]> = [
      [{ key: 'Bad Key', name: 'x', type: 'boolean' }, 'key'],
      [{ key: 'ok', name: 'x', type: 'switch' }, 'type'],
      [{ key: 'ok', name: 'x', type: 'boolean', aggregation: 'sum' }, 'aggregation'],
      [{ key: 'ok', name: 'x', type: 'metered', aggregation: 'avg' }, 'aggregation'],
      [{ key: 'ok', name: 'x', type: 'boolean', color: 'red' }, 'color'],
      [{ key: 'ok', type: 'boolean' }, 'name'],
    ];
    for (const [body, path] of cases) {
      const res = await app.json<Problem>('POST', '/v1/features', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.errors.map((e) => e.path)).toContain(path);
    }
    expect(await count('features')).toBe(before);
  });

  it('updates name, description and unit but never the type', async () => {
    const key = await feature('metered');
    const res = await app.json<Body>('PATCH', `/v1/features/${key}`, {
      name: 'Renamed',
      unit: 'token',
      description: 'd',
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ name: 'Renamed', unit: 'token', description: 'd', type: 'metered' });
    const typed = await app.json<Problem>('PATCH', `/v1/features/${key}`, { type: 'boolean', name: 'Again' });
    expect(typed.status).toBe(400);
    expect(typed.body.errors.map((e) => e.path)).toEqual(['type']);
    expect((await app.json<Body>('GET', `/v1/features/${key}`)).body).toMatchObject({
      name: 'Renamed',
      type: 'metered',
    });
    expect((await app.json('PATCH', '/v1/features/nope', { name: 'x' })).status).toBe(404);
  });

  it('archives idempotently, filters by archived, and pages by key', async () => {
    const key = await feature('boolean');
    const auditsBefore = await count('audit_events');
    const first = await app.json<Body>('POST', `/v1/features/${key}/archive`);
    const second = await app.json<Body>('POST', `/v1/features/${key}/archive`);
    expect(first.status).toBe(200);
    expect(second.body).toEqual(first.body);
    expect(first.body.archived).toBe(true);
    expect(await count('audit_events')).toBe(auditsBefore + 1);

    const archived = await app.json<{ data: Body[] }>('GET', '/v1/features?archived=true&limit=200');
    expect(archived.body.data.map((f) => f.key)).toContain(key);
    expect(archived.body.data.every((f) => f.archived === true)).toBe(true);
    const active = await app.json<{ data: Body[] }>('GET', '/v1/features?archived=false&limit=200');
    expect(active.body.data.map((f) => f.key)).not.toContain(key);

    for (let i = 0; i < 5; i++) await feature('config');
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { body: { data: Body[]; next_cursor: string | null } } = await app.json(
        'GET',
        `/v1/features?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      seen.push(...res.body.data.map((f) => String(f.key)));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...seen].sort());
    const total = await app.runtime.deps.db
      .selectFrom('features')
      .select('key')
      .where('environment', '=', 'test')
      .execute();
    expect(new Set(seen).size).toBe(total.length);
  });

  it('is admin-only and hidden from other environments', async () => {
    const key = await feature('boolean');
    await expectAdminOnly(app, 'POST', '/v1/features', { key: 'sec', name: 's', type: 'boolean' });
    await expectAdminOnly(app, 'GET', '/v1/features');
    await expectAdminOnly(app, 'GET', `/v1/features/${key}`);
    await expectAdminOnly(app, 'PATCH', `/v1/features/${key}`, { name: 'x' });
    await expectAdminOnly(app, 'POST', `/v1/features/${key}/archive`);
    await expectHiddenFromOtherEnvironment(app, 'GET', `/v1/features/${key}`);
    await expectHiddenFromOtherEnvironment(app, 'PATCH', `/v1/features/${key}`, { name: 'x' });
    await expectHiddenFromOtherEnvironment(app, 'POST', `/v1/features/${key}/archive`);
    expect((await app.json<Body>('GET', `/v1/features/${key}`)).body).toMatchObject({
      name: key,
      archived: false,
    });
  });
});

describe('plans', () => {
  it('creates a plan at version 1 with defaults filled in, audited and announced', async () => {
    const f = await catalog();
    const key = uniq('pro');
    const res = await app.json<Body>('POST', '/v1/plans', {
      key,
      name: 'Pro',
      trial: { days: 14, on_end: 'convert' },
      entitlements: [
        { feature: f.sso },
        { feature: f.theme, value: { color: 'blue' }, condition: 'customer.attributes.region == "eu"' },
        { ...metered(f.calls, 1000), notify_at_percent: [100, 80, 80], per_seat: true },
      ],
      stripe: { price_ids: ['price_1', 'price_1'] },
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(res.body).toMatchObject({
      key,
      version: 1,
      addon: false,
      archived: false,
      description: null,
      trial: { days: 14, on_end: 'convert', downgrade_to: null },
      stripe: { price_ids: ['price_1'], lookup_keys: [] },
      entitlements: [
        { feature: f.sso, enabled: true, condition: null },
        { feature: f.theme, value: { color: 'blue' }, condition: 'customer.attributes.region == "eu"' },
        {
          feature: f.calls,
          limit: 1000,
          reset: 'month',
          overage: 'deny',
          notify_at_percent: [80, 100],
          per_seat: true,
        },
      ],
    });
    const detail = await app.json<Body>('GET', `/v1/plans/${key}`);
    expect(detail.body).toMatchObject({
      version: 1,
      versions: [{ version: 1, created_at: expect.any(String) }],
    });

    const audits = await app.json<{ data: Body[] }>('GET', '/v1/audit-events?action=plan.created');
    const audit = audits.body.data.find((e) => (e.target as Body).id === res.body.id);
    expect(audit).toMatchObject({ action: 'plan.created', after: { key, version: 1 } });
    const outbox = await app.runtime.deps.db
      .selectFrom('outbox')
      .selectAll()
      .where('topic', '=', 'catalog.changed')
      .execute();
    expect(outbox.map((o) => o.payload)).toContainEqual(
      expect.objectContaining({ action: 'plan.created', key }),
    );

    const dup = await app.json('POST', '/v1/plans', { key, name: 'x', entitlements: [] });
    expect(dup.status).toBe(409);
    expect(dup.body).toMatchObject({ code: 'plan_exists' });
  });

  it('refuses entitlements the catalog cannot accept with a 422 naming the entry, writing nothing', async () => {
    const f = await catalog();
    const gone = await feature('boolean');
    await app.json('POST', `/v1/features/${gone}/archive`);
    const addon = uniq('addon');
    await app.json('POST', '/v1/plans', { key: addon, name: 'A', addon: true, entitlements: [] });
    const counts = async () => [
      await count('plans'),
      await count('plan_versions'),
      await count('audit_events'),
    ];
    const before = await counts();
    const cases: Array<[Body[], Body | undefined, string, string]> = [
      [[{ feature: 'no-such-feature' }], undefined, 'invalid_entitlement', 'entitlements[0].feature'],
      [[{ feature: f.sso }, { feature: gone }], undefined, 'invalid_entitlement', 'entitlements[1].feature'],
      [[{ feature: f.sso, limit: 5 }], undefined, 'invalid_entitlement', 'entitlements[0].limit'],
      [
        [{ feature: f.calls, limit: 5, overage: 'deny' }],
        undefined,
        'invalid_entitlement',
        'entitlements[0].reset',
      ],
      [[{ feature: f.theme }], undefined, 'invalid_entitlement', 'entitlements[0].value'],
      [
        [metered(f.calls), { feature: f.sso }, { feature: f.theme, value: 1, per_seat: true }],
        undefined,
        'invalid_entitlement',
        'entitlements[2].per_seat',
      ],
      [[{ feature: f.sso }, { feature: f.sso }], undefined, 'invalid_entitlement', 'entitlements[1].feature'],
      [
        [{ feature: f.sso, condition: 'customer.attributes.x ==' }],
        undefined,
        'invalid_condition',
        'entitlements[0].condition',
      ],
      [[], { days: 7, on_end: 'downgrade' }, 'invalid_trial', 'trial.downgrade_to'],
      [[], { days: 7, on_end: 'downgrade', downgrade_to: addon }, 'invalid_trial', 'trial.downgrade_to'],
      [
        [],
        { days: 7, on_end: 'downgrade', downgrade_to: 'no-such-plan' },
        'invalid_trial',
        'trial.downgrade_to',
      ],
    ];
    for (const [entitlements, trial, code, path] of cases) {
      const res = await app.json<Problem>('POST', '/v1/plans', {
        key: uniq('bad'),
        name: 'B',
        entitlements,
        ...(trial ? { trial } : {}),
      });
      expect(res.status, JSON.stringify(entitlements)).toBe(422);
      expect(res.body.code).toBe(code);
      expect(res.body.errors.map((e) => e.path)).toContain(path);
    }
    const shape: Array<[Body, string]> = [
      [{ entitlements: [{ feature: f.sso, bogus: 1 }] }, 'entitlements[0].bogus'],
      [{ entitlements: [{ ...metered(f.calls), limit: -1 }] }, 'entitlements[0].limit'],
      [{ entitlements: [{ ...metered(f.calls), reset: 'hourly' }] }, 'entitlements[0].reset'],
      [{ entitlements: [], trial: { days: 0, on_end: 'convert' } }, 'trial.days'],
      [{ entitlements: [], stripe: { prices: [] } }, 'stripe.prices'],
      [{}, 'entitlements'],
    ];
    for (const [body, path] of shape) {
      const res = await app.json<Problem>('POST', '/v1/plans', { key: uniq('bad'), name: 'B', ...body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.errors.map((e) => e.path)).toContain(path);
    }
    expect(await counts()).toEqual(before);
  });

  it('publishes immutable versions; earlier ones stay readable and loadable', async () => {
    const f = await catalog();
    const key = uniq('team');
    await app.json('POST', '/v1/plans', {
      key,
      name: 'Team',
      trial: { days: 7, on_end: 'cancel' },
      entitlements: [metered(f.calls, 10)],
    });
    const v2 = await app.json<Body>('POST', `/v1/plans/${key}/versions`, {
      entitlements: [metered(f.calls, 20), { feature: f.sso }],
    });
    expect(v2.status).toBe(201);
    expect(v2.body).toMatchObject({ version: 2, trial: { days: 7, on_end: 'cancel' } });
    const v3 = await app.json<Body>('POST', `/v1/plans/${key}/versions`, { entitlements: [], trial: null });
    expect(v3.body).toMatchObject({ version: 3, trial: null, entitlements: [] });

    const v1 = await app.json<Body>('GET', `/v1/plans/${key}/versions/1`);
    expect(v1.body).toMatchObject({ version: 1, entitlements: [{ feature: f.calls, limit: 10 }] });
    const latest = await app.json<{ version: number; versions: Body[] }>('GET', `/v1/plans/${key}`);
    expect(latest.body.version).toBe(3);
    expect(latest.body.versions.map((v) => v.version)).toEqual([1, 2, 3]);
    expect((await app.json('GET', `/v1/plans/${key}/versions/4`)).status).toBe(404);
    expect((await app.json<Problem>('GET', `/v1/plans/${key}/versions/abc`)).body.errors[0]?.path).toBe(
      'path.version',
    );
    expect((await app.json('POST', '/v1/plans/nope/versions', { entitlements: [] })).status).toBe(404);

    // An archived feature stays in the versions that had it, but no new version may name it.
    await app.json('POST', `/v1/features/${f.sso}/archive`);
    const refused = await app.json<Problem>('POST', `/v1/plans/${key}/versions`, {
      entitlements: [{ feature: f.sso }],
    });
    expect(refused.status).toBe(422);
    expect(refused.body.errors[0]?.path).toBe('entitlements[0].feature');
    const db = app.runtime.deps.db;
    const loaded = await loadPlanVersion(db, 'test', key, 2);
    expect(loaded).toEqual({
      planKey: key,
      version: 2,
      addon: false,
      trial: { days: 7, onEnd: 'cancel', downgradeTo: null },
      entitlements: [
        {
          type: 'metered',
          feature: f.calls,
          condition: null,
          limit: 20,
          reset: 'month',
          overage: 'deny',
          notifyAtPercent: [],
          perSeat: false,
        },
        { type: 'boolean', feature: f.sso, condition: null, enabled: true },
      ],
    });
    expect((await latestPlanVersion(db, 'test', key))?.version).toBe(3);
    expect(await loadPlanVersion(db, 'live', key, 1)).toBeNull();
    const features = await loadFeatures(db, 'test');
    expect(features.get(f.sso)).toMatchObject({ type: 'boolean', archived: true });
    expect(features.get(f.calls)).toMatchObject({ type: 'metered', aggregation: 'sum' });
  });

  it('numbers concurrently published versions 1..n without gaps or duplicates', async () => {
    const f = await catalog();
    const key = uniq('race');
    await app.json('POST', '/v1/plans', { key, name: 'Race', entitlements: [] });
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        app.json<{ version: number }>('POST', `/v1/plans/${key}/versions`, {
          entitlements: [metered(f.calls, i)],
        }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array(10).fill(201));
    expect(results.map((r) => r.body.version).sort((a, b) => a - b)).toEqual([
      2, 3, 4, 5, 6, 7, 8, 9, 10, 11,
    ]);
    const rows = await app.runtime.deps.db
      .selectFrom('plan_versions')
      .select('version')
      .where('plan_key', '=', key)
      .orderBy('version')
      .execute();
    expect(rows.map((r) => r.version)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  });

  it('renames and archives plans, lists them by key with filters', async () => {
    const base = uniq('base');
    const addon = uniq('extra');
    await app.json('POST', '/v1/plans', { key: base, name: 'Base', entitlements: [] });
    await app.json('POST', '/v1/plans', { key: addon, name: 'Extra', addon: true, entitlements: [] });
    const renamed = await app.json<Body>('PATCH', `/v1/plans/${base}`, {
      name: 'Basic',
      description: 'entry',
    });
    expect(renamed.body).toMatchObject({ name: 'Basic', description: 'entry', version: 1 });
    const trial = { days: 30, on_end: 'downgrade', downgrade_to: base };
    const trialing = await app.json<Body>('POST', '/v1/plans', {
      key: uniq('trial'),
      name: 'T',
      trial,
      entitlements: [],
    });
    expect(trialing.status).toBe(201);
    expect(trialing.body.trial).toEqual(trial);
    const addonChange = await app.json<Problem>('PATCH', `/v1/plans/${base}`, { addon: true });
    expect(addonChange.status).toBe(400);
    expect(addonChange.body.errors[0]?.path).toBe('addon');
    const a1 = await app.json<Body>('POST', `/v1/plans/${base}/archive`);
    const a2 = await app.json<Body>('POST', `/v1/plans/${base}/archive`);
    expect(a1.body).toMatchObject({ archived: true });
    expect(a2.body).toEqual(a1.body);
    const addons = await app.json<{ data: Body[] }>('GET', '/v1/plans?addon=true&limit=200');
    expect(addons.body.data.every((p) => p.addon === true)).toBe(true);
    expect(addons.body.data.map((p) => p.key)).toContain(addon);
    const archived = await app.json<{ data: Body[] }>('GET', '/v1/plans?archived=true&limit=200');
    expect(archived.body.data.map((p) => p.key)).toEqual([base]);
    const firstPage = await app.json<{ data: Body[]; next_cursor: string }>('GET', '/v1/plans?limit=1');
    const next = await app.json<{ data: Body[] }>(
      'GET',
      `/v1/plans?limit=1&cursor=${firstPage.body.next_cursor}`,
    );
    expect(String(next.body.data[0]?.key) > String(firstPage.body.data[0]?.key)).toBe(true);
    const audited = await app.json<{ data: Body[] }>('GET', '/v1/audit-events?action=plan.*&limit=200');
    const actions = new Set(audited.body.data.map((e) => e.action));
    for (const a of ['plan.created', 'plan.version_created', 'plan.updated', 'plan.archived'])
      expect(actions).toContain(a);
    expect((await app.json<Body>('GET', '/v1/audit-events/verify')).body).toMatchObject({ ok: true });
  });

  it('is admin-only and hidden from other environments', async () => {
    const key = uniq('sec');
    await app.json('POST', '/v1/plans', { key, name: 'S', entitlements: [] });
    await expectAdminOnly(app, 'POST', '/v1/plans', { key: 'x', name: 'x', entitlements: [] });
    await expectAdminOnly(app, 'GET', '/v1/plans');
    await expectAdminOnly(app, 'GET', `/v1/plans/${key}`);
    await expectAdminOnly(app, 'GET', `/v1/plans/${key}/versions/1`);
    await expectAdminOnly(app, 'POST', `/v1/plans/${key}/versions`, { entitlements: [] });
    await expectAdminOnly(app, 'PATCH', `/v1/plans/${key}`, { name: 'x' });
    await expectAdminOnly(app, 'POST', `/v1/plans/${key}/archive`);
    for (const [method, path, body] of [
      ['GET', `/v1/plans/${key}`],
      ['GET', `/v1/plans/${key}/versions/1`],
      ['POST', `/v1/plans/${key}/versions`, { entitlements: [] }],
      ['PATCH', `/v1/plans/${key}`, { name: 'x' }],
      ['POST', `/v1/plans/${key}/archive`],
    ] as Array<[string, string, Body?]>) {
      await expectHiddenFromOtherEnvironment(app, method, path, body);
    }
    expect((await app.json<Body>('GET', `/v1/plans/${key}`)).body).toMatchObject({
      version: 1,
      name: 'S',
      archived: false,
    });
  });
});
