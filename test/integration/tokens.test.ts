import { createPublicKey, type JsonWebKey, verify } from 'node:crypto';
import { createLocalJWKSet, type JWK, jwtVerify } from 'jose';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import type { ManualClock } from '../../src/platform/clock.ts';
import { createTestApp, createTestDatabase, frozenClock, type TestApp } from '../helpers/harness.ts';
import { expectAdminOnly } from '../helpers/security.ts';

let app: TestApp;
let clock: ManualClock;

beforeAll(async () => {
  clock = frozenClock('2026-03-10T12:00:00.000Z');
  app = await createTestApp({ clock });
  await app.json('POST', '/v1/features', { key: 'sso', name: 'SSO', type: 'boolean' });
  await app.json('POST', '/v1/features', { key: 'audit_log', name: 'Audit log', type: 'boolean' });
  await app.json('POST', '/v1/features', { key: 'theme', name: 'Theme', type: 'config' });
  await app.json('POST', '/v1/features', { key: 'calls', name: 'Calls', type: 'metered' });
  const plan = await app.json('POST', '/v1/plans', {
    key: 'pro',
    name: 'Pro',
    entitlements: [
      { feature: 'sso', enabled: true },
      { feature: 'theme', value: { color: 'teal' } },
      { feature: 'calls', limit: 100, reset: 'month', overage: 'deny' },
    ],
  });
  expect(plan.status, JSON.stringify(plan.body)).toBe(201);
  expect((await app.json('PUT', '/v1/customers/acme', {})).status).toBe(201);
  expect((await app.json('POST', '/v1/customers/acme/subscriptions', { plan: 'pro' })).status).toBe(201);
  const usage = await app.json('POST', '/v1/usage', {
    customer_id: 'acme',
    feature: 'calls',
    value: 7,
    idempotency_key: 'u1',
  });
  expect(usage.status).toBeLessThan(300);
});
afterAll(async () => {
  await app?.close();
});

async function issue(body?: unknown, key?: string) {
  return app.json<{ token: string; expires_at: string }>(
    'POST',
    '/v1/customers/acme/token',
    body,
    key ? { key } : {},
  );
}

async function fetchJwks(): Promise<{ keys: JWK[] }> {
  const res = await app.json<{ keys: JWK[] }>('GET', '/.well-known/jwks.json', undefined, { key: null });
  expect(res.status).toBe(200);
  expect(res.headers.get('cache-control')).toBe('public, max-age=300');
  return res.body;
}

/**
 * A verifier written with Node's crypto alone: the key by `kid` from the JWKS, the Ed25519
 * signature over `header.payload`, then `exp`, `iss` and `aud`. Throws what it refuses.
 */
async function verifyIndependently(token: string): Promise<Record<string, unknown>> {
  const [h, p, s] = token.split('.') as [string, string, string];
  const header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8')) as { alg: string; kid: string };
  if (header.alg !== 'EdDSA') throw new Error('unexpected alg');
  const jwk = (await fetchJwks()).keys.find((k) => k.kid === header.kid);
  if (!jwk) throw new Error('unknown kid');
  const publicKey = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  if (!verify(null, Buffer.from(`${h}.${p}`), publicKey, Buffer.from(s, 'base64url')))
    throw new Error('bad signature');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8')) as Record<string, unknown>;
  if ((claims.exp as number) * 1000 <= clock.now().getTime()) throw new Error('expired');
  if (claims.iss !== 'tessera' || claims.aud !== 'test') throw new Error('wrong issuer or audience');
  return claims;
}

async function verifyWithJose(token: string) {
  return jwtVerify(token, createLocalJWKSet(await fetchJwks()), {
    issuer: 'tessera',
    audience: 'test',
    algorithms: ['EdDSA'],
    currentDate: clock.now(),
  });
}

function kidOf(token: string): string {
  return JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')).kid;
}

describe('entitlement tokens', () => {
  it('creates one signing key on first use, however many requests race to it', async () => {
    const all = await Promise.all(Array.from({ length: 6 }, () => issue()));
    expect(all.map((r) => r.status)).toEqual(Array(6).fill(200));
    expect(new Set(all.map((r) => kidOf(r.body.token))).size).toBe(1);
    const keys = await app.runtime.deps.db.selectFrom('signing_keys').select('id').execute();
    expect(keys.map((k) => k.id)).toEqual([kidOf(all[0]!.body.token)]);
  });

  it('carries exact claims, verified by jose and by crypto.verify alone', async () => {
    const res = await issue();
    expect(res.status).toBe(200);
    const now = Math.floor(clock.now().getTime() / 1000);
    const listing = await app.json<{ version: number }>('GET', '/v1/customers/acme/entitlements');
    const expected = {
      iss: 'tessera',
      sub: 'acme',
      aud: 'test',
      iat: now,
      exp: now + 300,
      ver: listing.body.version,
      ent: {
        sso: true,
        theme: { color: 'teal' },
        calls: { limit: 100, remaining: 93, resets_at: '2026-04-01T00:00:00.000Z' },
      },
    };
    expect(await verifyIndependently(res.body.token)).toEqual(expected);
    const verified = await verifyWithJose(res.body.token);
    expect(verified.payload).toEqual(expected);
    expect(verified.protectedHeader).toMatchObject({ alg: 'EdDSA', kid: kidOf(res.body.token) });
    expect(res.body.expires_at).toBe(new Date((now + 300) * 1000).toISOString());
  });

  it('takes ttl_seconds from 1 to 3600 and names the field otherwise', async () => {
    const max = await issue({ ttl_seconds: 3600 });
    expect(max.status).toBe(200);
    const claims = await verifyIndependently(max.body.token);
    expect((claims.exp as number) - (claims.iat as number)).toBe(3600);
    for (const ttl_seconds of [0, 3601, 1.5, '60', -1]) {
      const bad = await issue({ ttl_seconds });
      expect(bad.status, String(ttl_seconds)).toBe(400);
      expect(bad.body).toMatchObject({ errors: [expect.objectContaining({ path: 'ttl_seconds' })] });
    }
  });

  it('answers 404 for an unknown customer, and for another environment’s', async () => {
    const res = await app.json('POST', '/v1/customers/nobody/token', {});
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ code: 'not_found' });
    const live = await app.json('POST', '/v1/customers/acme/token', {}, { key: app.liveAdminKey });
    expect(live.status).toBe(404);
  });

  it('is issued to a check-scoped key; rotation is admin only', async () => {
    expect((await issue({}, app.checkKey)).status).toBe(200);
    expect((await app.json('POST', '/v1/customers/acme/token', {}, { key: null })).status).toBe(401);
    await expectAdminOnly(app, 'POST', '/v1/signing-keys/rotate');
  });

  it('refuses an expired token', async () => {
    const res = await issue({ ttl_seconds: 60 });
    await verifyIndependently(res.body.token);
    clock.advance(61_000);
    await expect(verifyIndependently(res.body.token)).rejects.toThrow('expired');
    await expect(verifyWithJose(res.body.token)).rejects.toThrow();
  });

  it('keeps every unexpired token valid across a rotation; the old key leaves the JWKS when its tokens have expired', async () => {
    const before = await issue({ ttl_seconds: 3600 });
    const oldKid = kidOf(before.body.token);
    const rotated = await app.json<{ kid: string; retired_kid: string; retired_key_leaves_jwks_at: string }>(
      'POST',
      '/v1/signing-keys/rotate',
    );
    expect(rotated.status).toBe(200);
    expect(rotated.body.retired_kid).toBe(oldKid);
    expect(rotated.body.kid).not.toBe(oldKid);

    const after = await issue();
    expect(kidOf(after.body.token)).toBe(rotated.body.kid);
    await verifyIndependently(before.body.token);
    await verifyWithJose(before.body.token);
    await verifyIndependently(after.body.token);
    const kids = (await fetchJwks()).keys.map((k) => k.kid);
    expect(kids).toEqual(expect.arrayContaining([oldKid, rotated.body.kid]));
    expect(new Set(kids).size).toBe(kids.length);

    // Just before the last token of the old key may have expired, its key is still served.
    clock.advance(3599_000);
    await verifyIndependently(before.body.token);
    clock.set(rotated.body.retired_key_leaves_jwks_at);
    clock.advance(1);
    expect((await fetchJwks()).keys.map((k) => k.kid)).not.toContain(oldKid);
    await expect(verifyIndependently(before.body.token)).rejects.toThrow('unknown kid');
    await expect(verifyWithJose(before.body.token)).rejects.toThrow();
    // The audit log records the rotation.
    const audit = await app.runtime.deps.db
      .selectFrom('audit_events')
      .select('action')
      .where('action', '=', 'signing_key.rotated')
      .execute();
    expect(audit).toHaveLength(1);
  });

  it('serves every environment’s live keys and stores private halves sealed', async () => {
    const live = await app.json('PUT', '/v1/customers/beta', {}, { key: app.liveAdminKey });
    expect(live.status).toBe(201);
    const token = await app.json<{ token: string }>(
      'POST',
      '/v1/customers/beta/token',
      {},
      { key: app.liveAdminKey },
    );
    expect(token.status).toBe(200);
    expect((await fetchJwks()).keys.map((k) => k.kid)).toContain(kidOf(token.body.token));

    const rows = await sql<{
      private_key: string;
      public_jwk: JWK;
    }>`SELECT private_key, public_jwk FROM signing_keys`.execute(app.runtime.deps.db);
    expect(rows.rows.length).toBeGreaterThanOrEqual(2);
    for (const row of rows.rows) {
      expect(row.private_key.startsWith('v1.')).toBe(true);
      expect(row.private_key).not.toContain('"d"');
      expect(row.public_jwk).not.toHaveProperty('d');
    }
    for (const key of (await fetchJwks()).keys) expect(key).not.toHaveProperty('d');
  });

  it('cannot open its keys after TESSERA_SECRET_KEY changed, until an admin rotates', async () => {
    const shared = await createTestDatabase();
    onTestFinished(() => shared.drop());
    const first = await createTestApp({ database: shared.database });
    await first.json('PUT', '/v1/customers/acme', {});
    expect((await first.json('POST', '/v1/customers/acme/token', {})).status).toBe(200);
    await first.close();
    const second = await createTestApp({
      database: shared.database,
      config: { secretKey: 'another-secret-key-of-at-least-32-characters' },
    });
    onTestFinished(() => second.close());
    const refused = await second.json('POST', '/v1/customers/acme/token', {});
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ code: 'unavailable' });
    expect(String(refused.body.detail)).toContain('TESSERA_SECRET_KEY changed');
    expect((await second.json('POST', '/v1/signing-keys/rotate')).status).toBe(200);
    expect((await second.json('POST', '/v1/customers/acme/token', {})).status).toBe(200);
  });
});
