import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, services, type TestApp } from '../helpers/harness.ts';
import { ledgerSum, meteredCustomer, use, usedNow } from './metering-fixtures.ts';

describe.each([
  ['redis', true],
  ['postgres', false],
] as const)('usage API (%s store)', (_name, redis) => {
  let app: TestApp;
  beforeAll(async () => {
    app = await createTestApp({ redis });
  });
  afterAll(async () => app?.close());
  const flush = () => app.runtime.metering.flush();

  it.skipIf(redis && !services.redis)(
    'counts, answers with the standing, and replays a repeated key',
    async () => {
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
      expect(refused.body).toMatchObject({
        accepted: false,
        reason: 'limit_exceeded',
        used: 3,
        remaining: 7,
      });
      expect(await usedNow(s)).toBe(3);
      await flush();
      expect(await ledgerSum(s)).toEqual({ counted: 3, events: 1 });
    },
  );
});
