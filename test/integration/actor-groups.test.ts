import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/harness.ts';
import { expectAdminOnly, expectHiddenFromOtherEnvironment } from '../helpers/security.ts';

let app: TestApp;
beforeAll(async () => {
  app = await createTestApp();
});
afterAll(async () => app?.close());

type Group = { key: string; members: string[] };

describe('actor groups', () => {
  it('creates (201), replaces (200) and reads a group, auditing both with the person', async () => {
    const created = await app.json<Group>(
      'PUT',
      '/v1/actor-groups/finance',
      { members: ['carol@vendor.com', 'dave'] },
      { headers: { 'tessera-actor': 'alice@vendor.com' } },
    );
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ key: 'finance', members: ['carol@vendor.com', 'dave'] });
    const replaced = await app.json<Group>('PUT', '/v1/actor-groups/finance', {
      members: ['erin@vendor.com'],
    });
    expect(replaced.status).toBe(200);
    const read = await app.json<Group>('GET', '/v1/actor-groups/finance');
    expect(read.body.members).toEqual(['erin@vendor.com']);
    const events = await app.json<{ data: Array<{ action: string; actor: { person?: string } }> }>(
      'GET',
      '/v1/audit-events?action=actor_group.*',
    );
    expect(events.body.data.map((e) => e.action)).toEqual(['actor_group.created', 'actor_group.updated']);
    expect(events.body.data[0]?.actor.person).toBe('alice@vendor.com');
    const verify = await app.json<{ ok: boolean }>('GET', '/v1/audit-events/verify');
    expect(verify.body.ok).toBe(true);
  });

  it.each([
    ['a member with a space', { members: ['bob smith'] }, 'members[0]'],
    ['a repeated member', { members: ['bob', 'bob'] }, 'members'],
    ['an unknown field', { members: [], extra: 1 }, ''],
  ])('refuses %s with 400 naming the field', async (_label, body, path) => {
    const res = await app.json<{ errors: Array<{ path: string }> }>('PUT', '/v1/actor-groups/refused', body);
    expect(res.status).toBe(400);
    if (path) expect(res.body.errors.map((e) => e.path)).toContain(path);
    expect((await app.json('GET', '/v1/actor-groups/refused')).status).toBe(404);
  });

  it('refuses a malformed group key', async () => {
    const res = await app.json('PUT', '/v1/actor-groups/bad%20key', { members: [] });
    expect(res.status).toBe(400);
  });

  it('is admin-only and environment-scoped', async () => {
    await app.json('PUT', '/v1/actor-groups/ops', { members: ['x'] });
    await expectAdminOnly(app, 'PUT', '/v1/actor-groups/ops', { members: [] });
    await expectAdminOnly(app, 'GET', '/v1/actor-groups/ops');
    await expectHiddenFromOtherEnvironment(app, 'GET', '/v1/actor-groups/ops');
    expect((await app.json<Group>('GET', '/v1/actor-groups/ops')).body.members).toEqual(['x']);
  });
});
