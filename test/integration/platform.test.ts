import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/harness.ts';
import { expectAdminOnly, expectHiddenFromOtherEnvironment } from '../helpers/security.ts';

let app: TestApp;
beforeAll(async () => {
  app = await createTestApp();
});
afterAll(async () => app?.close());

describe('operations endpoints', () => {
  it('answers health, readiness and metrics without a key', async () => {
    expect((await app.json('GET', '/healthz', undefined, { key: null })).body).toEqual({ status: 'ok' });
    const ready = await app.json('GET', '/readyz', undefined, { key: null });
    expect(ready.status).toBe(200);
    expect(ready.body).toMatchObject({ status: 'ready', checks: { database: 'ok' } });
    const metrics = await app.request('GET', '/metrics', undefined, { key: null });
    expect(await metrics.text()).toContain('tessera_http_requests_total');
  });

  it('serves a valid OpenAPI 3.1 document listing every route, and a docs page', async () => {
    const doc = (
      await app.json<{ openapi: string; paths: Record<string, unknown> }>('GET', '/openapi.json', undefined, {
        key: null,
      })
    ).body;
    expect(doc.openapi).toBe('3.1.0');
    const validator = new Validator();
    const result = await validator.validate(doc as unknown as Parameters<Validator['validate']>[0]);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    // Every /v1 route registered on the app appears in the document.
    const registered = new Set(
      app.runtime.app.routes
        .filter((r) => r.path.startsWith('/v1/') && r.method !== 'ALL')
        .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, '{$1}')}`),
    );
    const documented = new Set(
      Object.entries(doc.paths).flatMap(([path, ops]) =>
        Object.keys(ops as object).map((m) => `${m} ${path}`),
      ),
    );
    for (const route of registered) expect(documented, route).toContain(route);
    const docs = await app.request('GET', '/docs', undefined, { key: null });
    expect(docs.status).toBe(200);
    expect(await docs.text()).toContain('/v1/api-keys');
  });

  it('answers unknown routes with problem+json', async () => {
    const res = await app.json('GET', '/v1/nope');
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ code: 'route_not_found', status: 404 });
  });

  it('echoes a sane X-Request-Id and makes one otherwise', async () => {
    const res = await app.request('GET', '/v1/api-keys', undefined, {
      headers: { 'x-request-id': 'abc-123' },
    });
    expect(res.headers.get('x-request-id')).toBe('abc-123');
    const other = await app.request('GET', '/v1/api-keys', undefined, {
      headers: { 'x-request-id': 'bad id with spaces' },
    });
    expect(other.headers.get('x-request-id')).toMatch(/^req_/);
  });
});

describe('API keys', () => {
  it('creates a key shown once, lists it without the secret, and revokes it', async () => {
    const created = await app.json<{ id: string; secret: string; environment: string; scopes: string[] }>(
      'POST',
      '/v1/api-keys',
      {
        name: 'backend',
        scopes: ['check'],
      },
    );
    expect(created.status).toBe(201);
    expect(created.body.secret).toMatch(/^sk_test_[A-Za-z0-9]{32}$/);
    expect(created.body).toMatchObject({ environment: 'test', scopes: ['check'] });

    const list = await app.json<{ data: Array<Record<string, unknown>> }>('GET', '/v1/api-keys');
    const listed = list.body.data.find((k) => k.id === created.body.id);
    expect(listed).toBeDefined();
    expect(listed).not.toHaveProperty('secret');

    expect((await app.json('GET', '/v1/api-keys', undefined, { key: created.body.secret })).status).toBe(403);
    const revoked = await app.json('DELETE', `/v1/api-keys/${created.body.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ revoked_at: expect.any(String) });
    // The harness caches keys for 0 s; in production the cache is at most 5 s.
    expect(
      (await app.json('GET', '/v1/customers/x/entitlements', undefined, { key: created.body.secret })).status,
    ).toBe(401);
  });

  it('stores only a hash of the secret', async () => {
    const created = await app.json<{ secret: string; id: string }>('POST', '/v1/api-keys', {
      name: 'h',
      scopes: ['admin'],
    });
    const row = await app.runtime.deps.db
      .selectFrom('api_keys')
      .selectAll()
      .where('id', '=', created.body.id)
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(created.body.secret);
  });

  it('creates keys in the caller’s environment and hides other environments’ keys', async () => {
    const live = await app.json<{ id: string; environment: string }>(
      'POST',
      '/v1/api-keys',
      { name: 'l', scopes: ['admin'] },
      { key: app.liveAdminKey },
    );
    expect(live.body.environment).toBe('live');
    await expectHiddenFromOtherEnvironment(
      app,
      'DELETE',
      `/v1/api-keys/${(await app.json<{ id: string }>('POST', '/v1/api-keys', { name: 't', scopes: ['check'] })).body.id}`,
    );
  });

  it('is admin-only', async () => {
    await expectAdminOnly(app, 'GET', '/v1/api-keys');
    await expectAdminOnly(app, 'POST', '/v1/api-keys', { name: 'x', scopes: ['admin'] });
    await expectAdminOnly(app, 'DELETE', '/v1/api-keys/key_x');
  });

  it('rejects bad input naming the field, and writes nothing', async () => {
    const before = await app.runtime.deps.db
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    const cases: Array<[unknown, string]> = [
      [{ name: '', scopes: ['admin'] }, 'name'],
      [{ name: 'x', scopes: ['root'] }, 'scopes[0]'],
      [{ name: 'x', scopes: ['admin'], extra: true }, 'extra'],
      [{ scopes: ['admin'] }, 'name'],
    ];
    for (const [body, path] of cases) {
      const res = await app.json<{ errors: Array<{ path: string }> }>('POST', '/v1/api-keys', body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(res.body.errors.map((e) => e.path)).toContain(path);
    }
    const malformed = await app.json('POST', '/v1/api-keys', '{"name": ');
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject({ code: 'malformed_json' });
    const wrongType = await app.json('POST', '/v1/api-keys', 'name=x', {
      headers: { 'content-type': 'text/plain' },
    });
    expect(wrongType.status).toBe(415);
    const huge = await app.json('POST', '/v1/api-keys', {
      name: 'x'.repeat(1024 * 1024 + 10),
      scopes: ['admin'],
    });
    expect(huge.status).toBe(413);
    expect(huge.body).toMatchObject({ code: 'payload_too_large' });
    const badCursor = await app.json('GET', '/v1/api-keys?cursor=!!notacursor');
    expect(badCursor.status).toBe(400);
    expect(badCursor.body).toMatchObject({ code: 'invalid_cursor' });
    const badLimit = await app.json<{ errors: Array<{ path: string }> }>('GET', '/v1/api-keys?limit=0');
    expect(badLimit.status).toBe(400);
    expect(badLimit.body.errors[0]?.path).toBe('query.limit');
    const after = await app.runtime.deps.db
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow();
    expect(Number(after.n)).toBe(Number(before.n));
  });

  it('pages through keys with a cursor', async () => {
    for (let i = 0; i < 5; i++) await app.json('POST', '/v1/api-keys', { name: `p${i}`, scopes: ['check'] });
    const seen = new Set<string>();
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { body: { data: Array<{ id: string }>; next_cursor: string | null } } = await app.json(
        'GET',
        `/v1/api-keys?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      for (const k of res.body.data) seen.add(k.id);
      cursor = res.body.next_cursor;
      pages += 1;
    } while (cursor && pages < 50);
    const total = await app.runtime.deps.db
      .selectFrom('api_keys')
      .select('id')
      .where('environment', '=', 'test')
      .execute();
    expect(seen.size).toBe(total.length);
  });
});

describe('Idempotency-Key', () => {
  it('replays the first answer for the same key and body, and refuses another body with 422', async () => {
    const headers = { 'idempotency-key': 'create-key-1' };
    const first = await app.json<{ id: string; secret: string }>(
      'POST',
      '/v1/api-keys',
      { name: 'idem', scopes: ['check'] },
      { headers },
    );
    const again = await app.json<{ id: string; secret: string }>(
      'POST',
      '/v1/api-keys',
      { name: 'idem', scopes: ['check'] },
      { headers },
    );
    expect(again.status).toBe(201);
    // The replay is the same answer without the secret, which is never stored.
    expect(again.body).toEqual({ ...first.body, secret: null, secret_redacted: true });
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    const other = await app.json('POST', '/v1/api-keys', { name: 'other', scopes: ['check'] }, { headers });
    expect(other.status).toBe(422);
    expect(other.body).toMatchObject({ code: 'idempotency_key_reused' });
    const rows = await app.runtime.deps.db
      .selectFrom('api_keys')
      .select('id')
      .where('name', '=', 'idem')
      .execute();
    expect(rows).toHaveLength(1);
  });

  it('lets concurrent requests with one key create one object', async () => {
    const headers = { 'idempotency-key': 'race-1' };
    const results = await Promise.all(
      Array.from({ length: 8 }, () =>
        app.json('POST', '/v1/api-keys', { name: 'race', scopes: ['check'] }, { headers }),
      ),
    );
    for (const r of results) expect([201, 409]).toContain(r.status);
    const rows = await app.runtime.deps.db
      .selectFrom('api_keys')
      .select('id')
      .where('name', '=', 'race')
      .execute();
    expect(rows).toHaveLength(1);
  });

  it('keeps keys apart per environment', async () => {
    const headers = { 'idempotency-key': 'env-scope' };
    const a = await app.json<{ environment: string }>(
      'POST',
      '/v1/api-keys',
      { name: 'e', scopes: ['check'] },
      { headers },
    );
    const b = await app.json<{ environment: string }>(
      'POST',
      '/v1/api-keys',
      { name: 'e', scopes: ['check'] },
      { headers, key: app.liveAdminKey },
    );
    expect(a.body.environment).toBe('test');
    expect(b.body.environment).toBe('live');
  });
});
