import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/harness.ts';

let app: TestApp;
beforeAll(async () => {
  app = await createTestApp();
});
afterAll(async () => app?.close());

type Event = { actor: Record<string, unknown>; target: { id: string } };

async function eventFor(id: string, query = 'action=api_key.created') {
  const res = await app.json<{ data: Event[] }>('GET', `/v1/audit-events?${query}`);
  return res.body.data.find((e) => e.target.id === id);
}

describe('Tessera-Actor', () => {
  it('records the person beside the key in the audit chain', async () => {
    const created = await app.json<{ id: string }>(
      'POST',
      '/v1/api-keys',
      { name: 'for-alice', scopes: ['check'] },
      { headers: { 'tessera-actor': 'alice@vendor.com' } },
    );
    expect(created.status).toBe(201);
    const event = await eventFor(created.body.id);
    expect(event?.actor).toMatchObject({
      type: 'api_key',
      name: 'bootstrap (TESSERA_ADMIN_KEY)',
      person: 'alice@vendor.com',
    });
    // The audit filter finds events by the person too.
    expect(await eventFor(created.body.id, 'actor=alice%40vendor.com')).toBeDefined();
    const verify = await app.json<{ ok: boolean }>('GET', '/v1/audit-events/verify');
    expect(verify.body.ok).toBe(true);
  });

  it('leaves the actor as it was when no person is named', async () => {
    const created = await app.json<{ id: string }>('POST', '/v1/api-keys', {
      name: 'nobody',
      scopes: ['check'],
    });
    const event = await eventFor(created.body.id);
    expect(event?.actor).not.toHaveProperty('person');
  });

  it.each([
    ['too long', `${'a'.repeat(250)}@v.com`],
    ['whitespace', 'alice smith'],
    ['a tab inside', 'alice\tsmith'],
  ])('refuses a malformed header (%s) with 400 naming it, and changes nothing', async (_label, value) => {
    const before = await app.runtime.deps.db
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow();
    const res = await app.json<{ code: string; errors: Array<{ path: string }>; request_id: string }>(
      'POST',
      '/v1/api-keys',
      { name: 'refused', scopes: ['check'] },
      { headers: { 'tessera-actor': value } },
    );
    expect(res.status).toBe(400);
    expect(res.body.code).toBe('validation_failed');
    expect(res.body.errors[0]?.path).toBe('Tessera-Actor');
    expect(res.body.request_id).toBeTruthy();
    const after = await app.runtime.deps.db
      .selectFrom('api_keys')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow();
    expect(after.n).toBe(before.n);
  });
});

describe('Tessera-Actor and idempotency', () => {
  it('keeps the key as the owner of an idempotency key, whoever the person is', async () => {
    const body = { name: 'once', scopes: ['check'] };
    const first = await app.json<{ id: string }>('POST', '/v1/api-keys', body, {
      headers: { 'tessera-actor': 'alice@vendor.com', 'idempotency-key': 'actor-idem-1' },
    });
    const again = await app.json<{ id: string }>('POST', '/v1/api-keys', body, {
      headers: { 'tessera-actor': 'bob@vendor.com', 'idempotency-key': 'actor-idem-1' },
    });
    expect(again.status).toBe(first.status);
    expect(again.body.id).toBe(first.body.id);
  });
});
