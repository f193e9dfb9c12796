import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, services, type TestApp } from '../helpers/harness.ts';
import { ledgerSum, meteredCustomer, uniqueKey, use, usedNow } from './metering-fixtures.ts';

describe.each([
  ['redis', true],
  ['postgres', false],
] as const)('usage API (%s store)', (_name, redis) => {
  let app: TestApp;
  beforeAll(async () => {
    if (redis && !services.redis) return;
    app = await createTestApp({ redis });
  });
  afterAll(async () => app?.close());
  const run = it.skipIf(redis && !services.redis);

  run('counts, answers with the standing, and replays a repeated key', async () => {
    const s = await meteredCustomer(app, { limit: 10 });
    const first = await use(s, { value: 3, idempotency_key: 'once' });
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({
      accepted: true,
      used: 3,
      limit: 10,
      remaining: 7,
      overage: 0,
      credit_used: 0,
    });
    expect(first.body.resets_at).toMatch(/^\d{4}-\d\d-01T00:00:00.000Z$/);
    const again = await use(s, { value: 3, idempotency_key: 'once' });
    expect(again.body).toEqual(first.body);
    const refused = await use(s, { value: 8 });
    expect(refused.body).toMatchObject({ accepted: false, reason: 'limit_exceeded', used: 3, remaining: 7 });
    expect(await usedNow(s)).toBe(3);
    await app.runtime.metering.flush();
    expect(await ledgerSum(s)).toEqual({ counted: 3, events: 1 });
  });

  run('answers bad input with a 4xx naming the field and counts nothing', async () => {
    const s = await meteredCustomer(app, { limit: 10 });
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ customer_id: 'nobody' }, 422, 'customer_id'],
      [{ feature: 'no_such_feature' }, 422, 'feature'],
      [{ feature: s.key('sso') }, 422, 'feature'],
      [{ value: -1 }, 400, 'value'],
      [{ value: 1.5 }, 400, 'value'],
      [{ idempotency_key: undefined }, 400, 'idempotency_key'],
      [{ idempotency_key: '' }, 400, 'idempotency_key'],
      [{ idempotency_key: 'x'.repeat(256) }, 400, 'idempotency_key'],
      [{ member: 'u1' }, 422, 'member'],
      [{ timestamp: '2999-01-01T00:00:00Z' }, 422, 'timestamp'],
      [{ timestamp: 'yesterday' }, 400, 'timestamp'],
      [{ surprise: true }, 400, 'surprise'],
    ];
    for (const [body, status, path] of cases) {
      const res = await use(s, body);
      expect(res.status, JSON.stringify(body)).toBe(status);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(
        (res.body.errors as Array<{ path: string }>).map((e) => e.path),
        JSON.stringify(body),
      ).toContain(path);
    }
    expect(await usedNow(s)).toBe(0);
    await app.runtime.metering.flush();
    expect(await ledgerSum(s)).toEqual({ counted: 0, events: 0 });
  });

  run('refuses usage the customer is not entitled to, with the decision’s reason', async () => {
    const s = await meteredCustomer(app);
    await s.feature('other', 'metered');
    const res = await app.json('POST', '/v1/usage', {
      customer_id: s.customerId,
      feature: s.key('other'),
      idempotency_key: uniqueKey(),
    });
    expect(res.body).toMatchObject({ accepted: false, reason: 'not_in_plan', used: 0 });
  });

  run('records a batch in order; one bad event gets its own error and spoils nothing', async () => {
    const s = await meteredCustomer(app, { limit: 5 });
    const event = (value: unknown) => ({
      customer_id: s.customerId,
      feature: s.key('calls'),
      value,
      idempotency_key: uniqueKey(),
    });
    const res = await app.json<{ results: Array<Record<string, unknown>> }>('POST', '/v1/usage/batch', {
      events: [
        event(2),
        event(-4),
        { ...event(1), customer_id: 'ghost' },
        event(2),
        event(2),
        'not an object',
      ],
    });
    expect(res.status).toBe(200);
    const [a, bad, ghost, b, c, junk] = res.body.results;
    expect(a).toMatchObject({ accepted: true, used: 2 });
    expect(bad).toEqual({
      error: { code: 'validation_failed', message: expect.any(String), path: 'events[1].value' },
    });
    expect(ghost).toMatchObject({ error: { code: 'unknown_customer', path: 'events[2].customer_id' } });
    expect(b).toMatchObject({ accepted: true, used: 4 });
    expect(c).toMatchObject({ accepted: false, reason: 'limit_exceeded', used: 4 });
    expect(junk).toMatchObject({ error: { code: 'validation_failed', path: 'events[5]' } });
    const tooMany = await app.json('POST', '/v1/usage/batch', {
      events: Array.from({ length: 1001 }, () => event(1)),
    });
    expect(tooMany.status).toBe(400);
    expect(tooMany.body).toMatchObject({ errors: [{ path: 'events' }] });
    expect(await usedNow(s)).toBe(4);
  });

  run('decisions read the counters: check with quantity and the entitlements list', async () => {
    const s = await meteredCustomer(app, { limit: 10 });
    await use(s, { value: 7 });
    expect(await s.check('calls', { quantity: 3 })).toMatchObject({
      allowed: true,
      used: 7,
      remaining: 3,
      limit: 10,
    });
    expect(await s.check('calls', { quantity: 4 })).toMatchObject({
      allowed: false,
      reason: 'limit_exceeded',
    });
    const row = await s.entitlement('calls');
    expect(row).toMatchObject({ used: 7, remaining: 3, overage: 'deny', overage_used: 0 });
    expect(row?.resets_at).toEqual((await use(s, { value: 0 })).body.resets_at);
  });

  run('takes a check-scoped key, refuses none, and keeps environments apart', async () => {
    const s = await meteredCustomer(app, { limit: 10 });
    expect((await use(s, {}, app.checkKey)).body).toMatchObject({ accepted: true, used: 1 });
    expect((await use(s, {}, null as unknown as string)).status).toBe(401);
    const live = await use(s, {}, app.liveAdminKey);
    expect(live.status).toBe(422);
    expect(live.body).toMatchObject({ code: 'unknown_customer' });
    expect(await usedNow(s)).toBe(1);
  });
});
