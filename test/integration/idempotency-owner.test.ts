import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/harness.ts';

let app: TestApp;
beforeAll(async () => {
  app = await createTestApp();
});
afterAll(async () => app?.close());

const keyBody = (name: string) => ({ name, scopes: ['admin'] });

describe('Idempotency-Key belongs to the API key that sent it', () => {
  it('never replays an admin’s stored answer to a check key', async () => {
    const headers = { 'idempotency-key': 'owner-1' };
    const admin = await app.json<{ secret: string }>('POST', '/v1/api-keys', keyBody('owner-1'), { headers });
    expect(admin.status).toBe(201);
    const check = await app.json('POST', '/v1/api-keys', keyBody('owner-1'), { headers, key: app.checkKey });
    expect(check.status).toBe(403);
    expect(check.body).toMatchObject({ code: 'insufficient_scope' });
    expect(JSON.stringify(check.body)).not.toContain(admin.body.secret);
    expect(check.headers.get('idempotent-replayed')).toBeNull();
  });

  it('does not replay a check key’s 403 to the admin, whose request then runs', async () => {
    const headers = { 'idempotency-key': 'owner-2' };
    const check = await app.json('POST', '/v1/api-keys', keyBody('owner-2'), { headers, key: app.checkKey });
    expect(check.status).toBe(403);
    const admin = await app.json<{ secret: string }>('POST', '/v1/api-keys', keyBody('owner-2'), { headers });
    expect(admin.status).toBe(201);
    expect(admin.body.secret).toMatch(/^sk_test_/);
    expect(admin.headers.get('idempotent-replayed')).toBeNull();
  });

  it('stores no 4xx: the client may fix its body and retry with the same key', async () => {
    const headers = { 'idempotency-key': 'fix-and-retry' };
    const bad = await app.json('POST', '/v1/api-keys', { name: '', scopes: ['admin'] }, { headers });
    expect(bad.status).toBe(400);
    const fixed = await app.json('POST', '/v1/api-keys', keyBody('fixed'), { headers });
    expect(fixed.status).toBe(201);
    // After a stored 2xx another body is still refused.
    const other = await app.json('POST', '/v1/api-keys', keyBody('other'), { headers });
    expect(other.status).toBe(422);
    expect(other.body).toMatchObject({ code: 'idempotency_key_reused' });
  });

  it('keeps no secret in the stored answer and replays key creation redacted', async () => {
    const headers = { 'idempotency-key': 'redacted-1' };
    const first = await app.json<Record<string, unknown>>('POST', '/v1/api-keys', keyBody('redacted'), {
      headers,
    });
    expect(first.status).toBe(201);
    expect(first.headers.get('cache-control')).toBe('no-store');
    const secret = first.body.secret as string;
    const rows = await app.runtime.deps.db.selectFrom('idempotency_keys').selectAll().execute();
    for (const row of rows) expect(row.response_body ?? '').not.toContain(secret);

    const again = await app.json<Record<string, unknown>>('POST', '/v1/api-keys', keyBody('redacted'), {
      headers,
    });
    expect(again.status).toBe(201);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toEqual({ ...first.body, secret: null, secret_redacted: true });
  });

  it('answers unauthenticated routes the same with or without an Idempotency-Key', async () => {
    const plain = await app.request('POST', '/v1/webhooks/stripe/test', '{}', { key: null });
    const keyed = await app.request('POST', '/v1/webhooks/stripe/test', '{}', {
      key: null,
      headers: { 'idempotency-key': 'hook-1' },
    });
    expect(keyed.status).toBe(plain.status);
    expect(keyed.status).toBeLessThan(500);
  });
});
