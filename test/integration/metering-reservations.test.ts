import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManualClock } from '../../src/platform/clock.ts';
import { createTestApp, frozenClock, services, type TestApp } from '../helpers/harness.ts';
import type { Scenario } from '../helpers/scenario.ts';
import { ledgerSum, meteredCustomer, use, usedNow } from './metering-fixtures.ts';

describe.each([
  ['redis', true],
  ['postgres', false],
] as const)('reservations (%s store)', (_name, redis) => {
  let app: TestApp;
  let clock: ManualClock;
  beforeAll(async () => {
    if (redis && !services.redis) return;
    clock = frozenClock('2026-03-10T12:00:00.000Z');
    app = await createTestApp({ redis, clock });
  });
  afterAll(async () => app?.close());
  const run = it.skipIf(redis && !services.redis);
  const reserve = (s: Scenario, amount: number, ttl_seconds = 60) =>
    app.json<Record<string, unknown>>(
      'POST',
      '/v1/reservations',
      { customer_id: s.customerId, feature: s.key('calls'), amount, ttl_seconds },
      { key: app.checkKey },
    );
  const act = (id: unknown, verb: 'commit' | 'release', body?: unknown) =>
    app.json<Record<string, unknown>>('POST', `/v1/reservations/${id}/${verb}`, body, { key: app.checkKey });

  run('holds count as used; commit counts part and frees the rest; release frees it all', async () => {
    const s = await meteredCustomer(app, { limit: 10 });
    const held = await reserve(s, 6);
    expect(held.status).toBe(201);
    expect(held.body).toMatchObject({
      status: 'held',
      amount: 6,
      expires_at: '2026-03-10T12:01:00.000Z',
      usage: { used: 6, remaining: 4 },
    });
    expect(await usedNow(s)).toBe(6);
    expect(await s.check('calls', { quantity: 5 })).toMatchObject({
      allowed: false,
      reason: 'limit_exceeded',
    });
    expect((await use(s, { value: 5 })).body).toMatchObject({ accepted: false });
    expect((await reserve(s, 5)).body).toMatchObject({ status: 409, code: 'limit_exceeded' });

    const committed = await act(held.body.id, 'commit', { amount: 4 });
    expect(committed.status).toBe(200);
    expect(committed.body).toMatchObject({
      status: 'committed',
      committed_amount: 4,
      usage: { used: 4, remaining: 6 },
    });
    expect((await act(held.body.id, 'release')).body).toMatchObject({
      status: 409,
      code: 'reservation_committed',
    });

    const other = await reserve(s, 5);
    expect(await usedNow(s)).toBe(9);
    expect((await act(other.body.id, 'release')).body).toMatchObject({
      status: 'released',
      committed_amount: null,
    });
    expect(await usedNow(s)).toBe(4);
    expect((await act(other.body.id, 'commit')).body).toMatchObject({
      status: 409,
      code: 'reservation_released',
    });
    await app.runtime.metering.flush();
    expect(await ledgerSum(s)).toEqual({ counted: 4, events: 1 });
  });

  run('commits all of it by default and refuses more than was held', async () => {
    const s = await meteredCustomer(app, { limit: 10 });
    const held = await reserve(s, 3);
    const tooMuch = await act(held.body.id, 'commit', { amount: 4 });
    expect(tooMuch.status).toBe(422);
    expect(tooMuch.body).toMatchObject({ code: 'amount_exceeds_reservation', errors: [{ path: 'amount' }] });
    expect((await act(held.body.id, 'commit')).body).toMatchObject({
      committed_amount: 3,
      usage: { used: 3 },
    });
  });

  run('releases a hold on its own when its time runs out', async () => {
    const s = await meteredCustomer(app, { limit: 10 });
    const held = await reserve(s, 10, 30);
    expect((await use(s)).body).toMatchObject({ accepted: false });
    clock.advance(30_000);
    expect(await usedNow(s)).toBe(0);
    expect((await use(s)).body).toMatchObject({ accepted: true, used: 1 });
    expect(await app.runtime.metering.sweep()).toBeGreaterThanOrEqual(1);
    const row = await app.json('GET', `/v1/reservations/${held.body.id}`, undefined, { key: app.checkKey });
    expect(row.body).toMatchObject({ status: 'expired' });
    expect((await act(held.body.id, 'commit')).body).toMatchObject({
      status: 409,
      code: 'reservation_expired',
    });
  });

  run('answers bad input and other environments as it should', async () => {
    const s = await meteredCustomer(app, { limit: 10 });
    const bad = await app.json('POST', '/v1/reservations', {
      customer_id: s.customerId,
      feature: s.key('calls'),
      amount: 0,
      ttl_seconds: 10,
    });
    expect(bad.status).toBe(400);
    const unknown = await app.json('POST', '/v1/reservations', {
      customer_id: 'ghost',
      feature: s.key('calls'),
      amount: 1,
      ttl_seconds: 10,
    });
    expect(unknown).toMatchObject({ status: 422, body: { code: 'unknown_customer' } });
    const held = await reserve(s, 1);
    const hidden = await app.json(
      'POST',
      `/v1/reservations/${held.body.id}/commit`,
      {},
      { key: app.liveAdminKey },
    );
    expect(hidden).toMatchObject({ status: 404, body: { code: 'not_found' } });
    expect((await app.json('POST', '/v1/reservations/res_nope/release')).status).toBe(404);
  });
});
