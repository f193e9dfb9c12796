import { sql } from 'kysely';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stripeClient, stripeConnection } from '../../src/modules/billing/settings.ts';
import { type FakeStripe, startFakeStripe } from '../helpers/fake-stripe.ts';
import { createTestApp, type TestApp } from '../helpers/harness.ts';

let app: TestApp;
let stripe: FakeStripe;
const SECRET = 'sk_test_51Hfake0123456789abcdefXYZ4242';
const WEBHOOK = 'whsec_c2VjcmV0LXNpZ25pbmcta2V5LWZvci10ZXN0cw==';

beforeAll(async () => {
  stripe = await startFakeStripe();
  app = await createTestApp({ config: { stripeApiBase: stripe.url } });
});
afterAll(async () => {
  await app?.close();
  await stripe?.close();
});

describe('Stripe settings', () => {
  it('stores the secrets sealed, never shows them, and audits without them', async () => {
    expect((await app.json('GET', '/v1/stripe/settings')).body).toMatchObject({
      secret_key_set: false,
      webhook_secret_set: false,
      lifecycle_owner: 'stripe',
    });
    const put = await app.json('PUT', '/v1/stripe/settings', {
      secret_key: SECRET,
      webhook_secret: WEBHOOK,
      lifecycle_owner: 'tessera',
    });
    expect(put.status).toBe(200);
    expect(put.body).toMatchObject({
      secret_key_set: true,
      secret_key_hint: 'sk_test_…4242',
      webhook_secret_set: true,
      lifecycle_owner: 'tessera',
    });
    const text =
      JSON.stringify(put.body) + JSON.stringify((await app.json('GET', '/v1/stripe/settings')).body);
    expect(text).not.toContain(SECRET);
    expect(text).not.toContain(WEBHOOK);

    const db = app.runtime.deps.db;
    const row = await db
      .selectFrom('stripe_settings')
      .selectAll()
      .where('environment', '=', 'test')
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(row)).not.toContain(SECRET.slice(8));
    expect(JSON.stringify(row)).not.toContain(WEBHOOK.slice(6));
    const audit = await sql<{
      t: string;
    }>`SELECT string_agg(after::text || coalesce(before::text, ''), ' ') AS t FROM audit_events WHERE action = 'stripe.settings_updated'`.execute(
      db,
    );
    expect(audit.rows[0]?.t).toContain('secret_key_changed');
    expect(audit.rows[0]?.t).not.toContain(SECRET.slice(8));

    const connection = await stripeConnection(app.runtime.deps, db, 'test');
    expect(connection).toEqual({
      environment: 'test',
      secretKey: SECRET,
      webhookSecret: WEBHOOK,
      lifecycleOwner: 'tessera',
    });
  });

  it('keeps the stored key when it is omitted and removes it on null', async () => {
    const kept = await app.json('PUT', '/v1/stripe/settings', { webhook_secret: WEBHOOK });
    expect(kept.body).toMatchObject({ secret_key_set: true, lifecycle_owner: 'tessera' });
    const removed = await app.json('PUT', '/v1/stripe/settings', {
      webhook_secret: WEBHOOK,
      secret_key: null,
    });
    expect(removed.body).toMatchObject({ secret_key_set: false, secret_key_hint: null });
    await app.json('PUT', '/v1/stripe/settings', { webhook_secret: WEBHOOK, secret_key: SECRET });
  });

  it('refuses a row sealed for another environment', async () => {
    const db = app.runtime.deps.db;
    const row = await db
      .selectFrom('stripe_settings')
      .selectAll()
      .where('environment', '=', 'test')
      .executeTakeFirstOrThrow();
    await db
      .insertInto('stripe_settings')
      .values({ ...row, environment: 'live' })
      .execute();
    await expect(stripeConnection(app.runtime.deps, db, 'live')).rejects.toThrow(/altered or moved/);
    await db.deleteFrom('stripe_settings').where('environment', '=', 'live').execute();
  });

  it('refuses bad input with the field named, and a key of the other mode, changing nothing', async () => {
    const before = (await app.json('GET', '/v1/stripe/settings')).body;
    for (const [body, field] of [
      [{ webhook_secret: 'nope' }, 'webhook_secret'],
      [{ webhook_secret: WEBHOOK, secret_key: 'pk_test_abcdefghijkl' }, 'secret_key'],
      [{ webhook_secret: WEBHOOK, lifecycle_owner: 'both' }, 'lifecycle_owner'],
      [{ secret_key: SECRET }, 'webhook_secret'],
    ] as const) {
      const res = await app.json<{ errors: { path: string }[] }>('PUT', '/v1/stripe/settings', body);
      expect(res.status).toBe(400);
      expect(res.body.errors.map((e) => e.path)).toContain(field);
    }
    const live = await app.json<{ code: string; errors: { path: string }[] }>('PUT', '/v1/stripe/settings', {
      webhook_secret: WEBHOOK,
      secret_key: 'sk_live_0123456789abcdefXYZ',
    });
    expect(live.status).toBe(422);
    expect(live.body.code).toBe('stripe_key_mode');
    expect(live.body.errors[0]?.path).toBe('secret_key');
    expect((await app.json('GET', '/v1/stripe/settings')).body).toEqual(before);
  });

  it('is for admin keys only', async () => {
    expect((await app.json('GET', '/v1/stripe/settings', undefined, { key: app.checkKey })).status).toBe(403);
    const put = await app.json('PUT', '/v1/stripe/settings', { webhook_secret: 'x' }, { key: app.checkKey });
    expect(put.status).toBe(403);
    expect(
      (await app.json('GET', '/v1/stripe/settings', undefined, { key: app.liveAdminKey })).body,
    ).toMatchObject({
      secret_key_set: false,
    });
  });
});

describe('the Stripe client', () => {
  it('talks to STRIPE_API_BASE with the key and the pinned API version', async () => {
    stripe.on('GET /v1/customers/cus_1', () => ({ body: { id: 'cus_1', object: 'customer', metadata: {} } }));
    const client = stripeClient(SECRET, app.runtime.deps.config.stripeApiBase);
    const customer = await client.customers.retrieve('cus_1');
    expect(customer.id).toBe('cus_1');
    const seen = stripe.requests.at(-1)!;
    expect(seen.headers.authorization).toBe(`Bearer ${SECRET}`);
    // The version the installed package pins (stripe 23.1.0: 2026-10-28.endive).
    expect(seen.headers['stripe-version']).toBe(Stripe.API_VERSION);
  });
});
