import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManualClock } from '../../src/platform/clock.ts';
import { createTestApp, frozenClock, services, type TestApp } from '../helpers/harness.ts';
import type { Scenario } from '../helpers/scenario.ts';
import { meteredCustomer, use } from './metering-fixtures.ts';

describe.each([
  ['redis', true],
  ['postgres', false],
] as const)('usage periods roll over with the clock (%s store)', (_name, redis) => {
  let app: TestApp;
  let clock: ManualClock;
  beforeAll(async () => {
    if (redis && !services.redis) return;
    clock = frozenClock('2026-01-31T10:00:00.000Z');
    app = await createTestApp({ redis, clock });
  });
  afterAll(async () => app?.close());
  const run = it.skipIf(redis && !services.redis);

  /** Uses 3 now, then answers what one more event says at each instant. */
  async function standing(s: Scenario, instants: string[]) {
    await use(s, { value: 3 });
    const out: Array<[number, string]> = [];
    for (const at of instants) {
      clock.set(at);
      const { body } = await use(s, { value: 1 });
      out.push([body.used as number, body.resets_at as string]);
    }
    return out;
  }

  run('calendar months reset on the 1st at midnight UTC', async () => {
    clock.set('2026-01-31T10:00:00.000Z');
    const s = await meteredCustomer(app, { reset: 'month' });
    expect(
      await standing(s, ['2026-01-31T23:59:59.999Z', '2026-02-01T00:00:00.000Z', '2026-02-28T23:00:00.000Z']),
    ).toEqual([
      [4, '2026-02-01T00:00:00.000Z'],
      [1, '2026-03-01T00:00:00.000Z'],
      [2, '2026-03-01T00:00:00.000Z'],
    ]);
    // An event stamped in January still counts in January.
    const late = await use(s, { value: 1, timestamp: '2026-01-31T12:00:00.000Z' });
    expect(late.body).toMatchObject({ used: 5, resets_at: '2026-02-01T00:00:00.000Z' });
  });

  run('billing periods anchored on Jan 31 end on Feb 28, then Mar 31', async () => {
    clock.set('2026-01-31T10:00:00.000Z');
    const s = await meteredCustomer(app, {
      reset: 'billing_period',
      subscribe: { starts_at: '2026-01-31T10:00:00.000Z' },
    });
    expect(
      await standing(s, [
        '2026-02-28T09:59:59.000Z',
        '2026-02-28T10:00:00.000Z',
        '2026-03-31T09:00:00.000Z',
        '2026-03-31T10:00:00.000Z',
      ]),
    ).toEqual([
      [4, '2026-02-28T10:00:00.000Z'],
      [1, '2026-03-31T10:00:00.000Z'],
      [2, '2026-03-31T10:00:00.000Z'],
      [1, '2026-04-30T10:00:00.000Z'],
    ]);
  });

  run('days reset at midnight and weeks on Monday', async () => {
    clock.set('2026-01-31T10:00:00.000Z');
    const daily = await meteredCustomer(app, { reset: 'day' });
    expect(await standing(daily, ['2026-01-31T23:59:59.000Z', '2026-02-01T00:00:00.000Z'])).toEqual([
      [4, '2026-02-01T00:00:00.000Z'],
      [1, '2026-02-02T00:00:00.000Z'],
    ]);
    clock.set('2026-01-31T10:00:00.000Z'); // a Saturday
    const weekly = await meteredCustomer(app, { reset: 'week' });
    expect(await standing(weekly, ['2026-02-01T23:00:00.000Z', '2026-02-02T00:00:00.000Z'])).toEqual([
      [4, '2026-02-02T00:00:00.000Z'],
      [1, '2026-02-09T00:00:00.000Z'],
    ]);
    const row = await weekly.entitlement('calls');
    expect(row).toMatchObject({ used: 1, resets_at: '2026-02-09T00:00:00.000Z' });
  });

  run('never-resetting features keep counting', async () => {
    clock.set('2026-01-31T10:00:00.000Z');
    const s = await meteredCustomer(app, { reset: 'none' });
    expect(await standing(s, ['2027-06-01T00:00:00.000Z'])).toEqual([[4, null]]);
  });
});
