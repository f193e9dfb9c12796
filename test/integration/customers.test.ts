import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { getCustomerRow } from '../../src/modules/customers/repo.ts';
import { Conflict } from '../../src/platform/errors.ts';
import { createTestApp, type TestApp } from '../helpers/harness.ts';
import { expectAdminOnly, expectHiddenFromOtherEnvironment } from '../helpers/security.ts';

let app: TestApp;
beforeAll(async () => {
  app = await createTestApp();
});
afterAll(async () => app?.close());
/** The runtime's list (it holds the subscriptions slice's hook); tests add theirs and take it out. */
const deletionHooks = () => app.runtime.deps.services.customerDeletionHooks;

type Body = Record<string, unknown>;
type Problem = { code: string; errors: Array<{ path: string; message: string }> };
let seq = 0;
const uniq = (prefix: string) => `${prefix}-${++seq}`;

async function count(table: 'customers' | 'audit_events', customerId?: string): Promise<number> {
  let q = app.runtime.deps.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as('n'));
  if (customerId !== undefined) q = q.where('customer_id', '=', customerId);
  return Number((await q.executeTakeFirstOrThrow()).n);
}

const put = (id: string, body: Body = {}, key?: string) =>
  app.json<Body>('PUT', `/v1/customers/${id}`, body, key ? { key } : undefined);

describe('PUT /v1/customers/{customer_id}', () => {
  it('creates (201) then updates (200), growing the version only when attributes change', async () => {
    const id = uniq('acme');
    const created = await put(id, {
      name: 'Acme',
      email: 'Ops@Acme.test',
      attributes: { region: 'eu', seats: 3 },
    });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      customer_id: id,
      name: 'Acme',
      email: 'Ops@Acme.test',
      attributes: { region: 'eu', seats: 3 },
      stripe_customer_id: null,
      version: 1,
      created_at: expect.any(String),
      updated_at: expect.any(String),
      deleted_at: null,
    });
    const renamed = await put(id, { name: 'Acme Inc.' });
    expect(renamed.status).toBe(200);
    expect(renamed.body).toMatchObject({
      name: 'Acme Inc.',
      email: 'Ops@Acme.test',
      attributes: { seats: 3 },
      version: 1,
    });
    const same = await put(id, { attributes: { seats: 3, region: 'eu' } });
    expect(same.body.version).toBe(1);
    const changed = await put(id, { attributes: { region: 'us' } });
    expect(changed.body).toMatchObject({ attributes: { region: 'us' }, version: 2 });
    expect((await app.json<Body>('GET', `/v1/customers/${id}`)).body).toEqual(changed.body);
    expect((await getCustomerRow(app.runtime.deps.db, 'test', id))?.version).toBe(2);
    const audit = await app.json<{ data: Body[] }>('GET', `/v1/audit-events?customer_id=${id}`);
    expect(audit.body.data.map((e) => e.action)).toEqual([
      'customer.created',
      'customer.updated',
      'customer.updated',
    ]);
  });

  it('makes one customer from concurrent first PUTs', async () => {
    const id = uniq('race');
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) => put(id, { attributes: { n: i } })),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 200)).toHaveLength(9);
    expect(await count('customers', id)).toBe(1);
    const audit = await app.json<{ data: Body[] }>(
      'GET',
      `/v1/audit-events?customer_id=${id}&action=customer.created`,
    );
    expect(audit.body.data).toHaveLength(1);
  });

  it('keeps stripe_customer_id unique per environment, also under races', async () => {
    const a = uniq('a');
    await put(a, { stripe_customer_id: 'cus_shared' });
    const taken = await put(uniq('b'), { stripe_customer_id: 'cus_shared' });
    expect(taken.status).toBe(409);
    expect(taken.body).toMatchObject({ code: 'stripe_customer_taken' });
    expect((await put(a, { stripe_customer_id: 'cus_shared', name: 'same holder' })).status).toBe(200);
    expect((await put(uniq('c'), { stripe_customer_id: 'cus_shared' }, app.liveAdminKey)).status).toBe(201);

    const ids = Array.from({ length: 6 }, () => uniq('claim'));
    const results = await Promise.all(ids.map((id) => put(id, { stripe_customer_id: 'cus_race' })));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    const listed = await app.json<{ data: Body[] }>('GET', '/v1/customers?stripe_customer_id=cus_race');
    expect(listed.body.data).toHaveLength(1);
  });

  it('rejects bad input naming the field, and writes nothing', async () => {
    const before = [await count('customers'), await count('audit_events')];
    const many = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`k${i}`, i]));
    const cases: Array<[string, unknown, string]> = [
      ['-starts-with-dash', {}, 'path.customer_id'],
      ['ok', { attributes: { nested: { a: 1 } } }, 'attributes.nested'],
      ['ok', { attributes: many }, 'attributes'],
      ['ok', { email: 'not-an-email' }, 'email'],
      ['ok', { plan: 'pro' }, 'plan'],
      ['ok', { name: 42 }, 'name'],
    ];
    for (const [id, body, path] of cases) {
      const res = await app.json<Problem>('PUT', `/v1/customers/${id}`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.errors.map((e) => e.path)).toContain(path);
    }
    expect([await count('customers'), await count('audit_events')]).toEqual(before);
  });
});

describe('reading and deleting customers', () => {
  it('deletes (kept, 404 afterwards), then a PUT restores it with 201', async () => {
    const id = uniq('gone');
    await put(id, { name: 'Gone', attributes: { tier: 'gold' } });
    const ran: string[] = [];
    const hook = async (_t: unknown, customerId: string) => {
      ran.push(customerId);
    };
    deletionHooks().push(hook);
    onTestFinished(() => {
      deletionHooks().splice(deletionHooks().indexOf(hook), 1);
    });
    const deleted = await app.json<Body>('DELETE', `/v1/customers/${id}`);
    expect(deleted.status).toBe(200);
    expect(deleted.body).toMatchObject({ customer_id: id, deleted_at: expect.any(String), version: 2 });
    expect(ran).toEqual([id]);
    expect((await app.json('GET', `/v1/customers/${id}`)).status).toBe(404);
    expect((await app.json('DELETE', `/v1/customers/${id}`)).status).toBe(404);
    expect(await getCustomerRow(app.runtime.deps.db, 'test', id)).toBeNull();
    expect(await getCustomerRow(app.runtime.deps.db, 'test', id, { includeDeleted: true })).not.toBeNull();
    const listed = await app.json<{ data: Body[] }>('GET', '/v1/customers?limit=200');
    expect(listed.body.data.map((c) => c.customer_id)).not.toContain(id);

    const restored = await put(id, { email: 'back@x.test' });
    expect(restored.status).toBe(201);
    expect(restored.body).toMatchObject({
      name: null,
      attributes: {},
      email: 'back@x.test',
      deleted_at: null,
      version: 3,
    });
  });

  it('runs deletion hooks inside the delete’s transaction', async () => {
    const id = uniq('kept');
    await put(id, { name: 'Kept' });
    const hook = async () => {
      throw new Conflict('subscription_busy', 'cannot end subscriptions now');
    };
    deletionHooks().push(hook);
    onTestFinished(() => {
      deletionHooks().splice(deletionHooks().indexOf(hook), 1);
    });
    const audits = await count('audit_events');
    const res = await app.json('DELETE', `/v1/customers/${id}`);
    expect(res.status).toBe(409);
    expect((await app.json<Body>('GET', `/v1/customers/${id}`)).body).toMatchObject({
      deleted_at: null,
      version: 1,
    });
    expect(await count('audit_events')).toBe(audits);
  });

  it('pages by id and filters by email and Stripe id', async () => {
    for (let i = 0; i < 5; i++)
      await put(uniq('page'), {
        email: i === 0 ? 'Find.Me@x.test' : null,
        stripe_customer_id: i === 1 ? 'cus_find' : null,
      });
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: { body: { data: Body[]; next_cursor: string | null } } = await app.json(
        'GET',
        `/v1/customers?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      seen.push(...res.body.data.map((c) => String(c.customer_id)));
      cursor = res.body.next_cursor;
    } while (cursor);
    expect(seen).toEqual([...seen].sort());
    const live = await app.runtime.deps.db
      .selectFrom('customers')
      .select('customer_id')
      .where('environment', '=', 'test')
      .where('deleted_at', 'is', null)
      .execute();
    expect(new Set(seen).size).toBe(live.length);
    const byEmail = await app.json<{ data: Body[] }>('GET', '/v1/customers?email=find.me@X.test');
    expect(byEmail.body.data.map((c) => c.email)).toEqual(['Find.Me@x.test']);
    const byStripe = await app.json<{ data: Body[] }>('GET', '/v1/customers?stripe_customer_id=cus_find');
    expect(byStripe.body.data).toHaveLength(1);
    expect((await app.json('GET', '/v1/customers?cursor=zzz')).status).toBe(400);
  });

  it('is admin-only, and environments are walls', async () => {
    const id = uniq('wall');
    await put(id, { name: 'Test env' });
    await expectAdminOnly(app, 'PUT', `/v1/customers/${id}`, { name: 'x' });
    await expectAdminOnly(app, 'GET', `/v1/customers/${id}`);
    await expectAdminOnly(app, 'GET', '/v1/customers');
    await expectAdminOnly(app, 'DELETE', `/v1/customers/${id}`);
    await expectHiddenFromOtherEnvironment(app, 'GET', `/v1/customers/${id}`);
    await expectHiddenFromOtherEnvironment(app, 'DELETE', `/v1/customers/${id}`);
    // The same id in live is another customer altogether.
    expect((await put(id, { name: 'Live env' }, app.liveAdminKey)).status).toBe(201);
    expect((await app.json<Body>('GET', `/v1/customers/${id}`)).body).toMatchObject({
      name: 'Test env',
      deleted_at: null,
    });
  });
});

describe('audit trail', () => {
  it('stays verifiable after 50 parallel mutations of customers and features', async () => {
    const before = await count('audit_events');
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        i % 2 === 0
          ? put(uniq('par'), { attributes: { i } })
          : app.json('POST', '/v1/features', { key: uniq('par-f'), name: 'P', type: 'boolean' }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual(Array.from({ length: 50 }, () => 201));
    expect(await count('audit_events')).toBe(before + 50);
    const verify = await app.json<{ ok: boolean; checked: number }>('GET', '/v1/audit-events/verify');
    expect(verify.body.ok).toBe(true);
    expect(verify.body.checked).toBeGreaterThanOrEqual(50);
  });
});
