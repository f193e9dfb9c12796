import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseUsageEvent } from '../../src/modules/metering/parse-event.ts';
import { UsageEventBody } from '../../src/modules/metering/schema.ts';
import { createTestApp, serveOverHttp, services, type TestApp } from '../helpers/harness.ts';
import type { Scenario } from '../helpers/scenario.ts';
import { ledgerSum, meteredCustomer, uniqueKey, usedNow } from './metering-fixtures.ts';

/** The node:http fast path for usage answers as the Hono routes do and hands over what it does not take. */
describe.skipIf(!services.redis)('usage fast path', () => {
  let app: TestApp;
  let http: Awaited<ReturnType<typeof serveOverHttp>>;
  let base: string;
  let s: Scenario;
  beforeAll(async () => {
    app = await createTestApp({ redis: true, config: { apiKeyCacheSeconds: 5 } });
    s = await meteredCustomer(app, { limit: 10 });
    http = await serveOverHttp(app.runtime);
    base = http.base;
  });
  afterAll(async () => {
    await http?.close();
    await app?.close();
  });
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${app.checkKey}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const event = (fields: Record<string, unknown> = {}) => ({
    customer_id: s.customerId,
    feature: s.key('calls'),
    idempotency_key: uniqueKey(),
    ...fields,
  });

  it('records single events and batches with the same answers as the app', async () => {
    const first = event({ value: 4 });
    const fast = await post('/v1/usage', first);
    expect(fast).toMatchObject({ status: 200, body: { accepted: true, used: 4, remaining: 6 } });
    const replayed = await app.json('POST', '/v1/usage', first, { key: app.checkKey });
    expect(replayed.body).toEqual(fast.body);
    const batch = await post('/v1/usage/batch', {
      events: [event({ value: 5 }), event({ value: -1 }), event({ value: 2 })],
    });
    expect(batch.status).toBe(200);
    expect(batch.body.results).toMatchObject([
      { accepted: true, used: 9 },
      { error: { code: 'validation_failed', path: 'events[1].value' } },
      { accepted: false, reason: 'limit_exceeded', used: 9 },
    ]);
    expect(await usedNow(s)).toBe(9);
    await app.runtime.metering.flush();
    expect(await ledgerSum(s)).toEqual({ counted: 9, events: 2 });
  });

  it('answers a batch with the very text the app answers it with', async () => {
    const events = [
      event({ value: 0 }),
      event({ value: -1 }),
      event({ feature: 'ghost' }),
      event({ customer_id: 'ghost' }),
      event({ value: 1000 }),
      event({ member: 'm' }),
    ];
    const res = await fetch(`${base}/v1/usage/batch`, {
      method: 'POST',
      headers: { authorization: `Bearer ${app.checkKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ events }),
    });
    const text = await res.text();
    expect(res.status).toBe(200);
    expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(text));
    // The same events again through the app: every answer is replayed, the errors made afresh.
    const replayed = await app.json('POST', '/v1/usage/batch', { events }, { key: app.checkKey });
    expect(text).toBe(JSON.stringify(replayed.body));
    expect(JSON.parse(text).results).toMatchObject([
      { accepted: true, used: 9 },
      { error: { path: 'events[1].value' } },
      { error: { code: 'unknown_feature' } },
      { error: { code: 'unknown_customer' } },
      { accepted: false, reason: 'limit_exceeded' },
      { error: { code: 'member_not_allowed' } },
    ]);
  });

  it('hands bad input and unknown customers to the app, which answers with problem+json', async () => {
    expect(await post('/v1/usage', event({ value: 1.5 }))).toMatchObject({
      status: 400,
      body: { code: 'validation_failed' },
    });
    expect(await post('/v1/usage', event({ customer_id: 'ghost' }))).toMatchObject({
      status: 422,
      body: { code: 'unknown_customer' },
    });
    expect(await post('/v1/usage', event({ timestamp: 'soon' }))).toMatchObject({ status: 400 });
    expect((await post('/v1/usage/batch', { events: [] })).status).toBe(400);
    expect(await usedNow(s)).toBe(9);
  });

  it('accepts exactly what the schema accepts', () => {
    const field = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.integer({ min: -2, max: 2 }),
      fc.double(),
      fc.constant(null),
      fc.constant(undefined),
    );
    fc.assert(
      fc.property(
        fc.record(
          { customer_id: field, feature: field, value: field, member: field, idempotency_key: field },
          { requiredKeys: [] },
        ),
        (candidate) => {
          const fast = parseUsageEvent(candidate as Record<string, unknown>);
          const schema = UsageEventBody.safeParse(candidate);
          if (fast !== null) expect(schema.success && schema.data).toEqual(fast);
          else if (schema.success) expect(JSON.stringify(candidate)).toContain('timestamp');
        },
      ),
    );
  });
});
