/**
 * The scheduler persists due time-driven transitions once each, with their audit (actor: system)
 * and outbox events, and what it persists equals `stateAt` at that instant.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { stateAt } from '../../src/domain/subscription-state.ts';
import { toSubscription } from '../../src/modules/subscriptions/repo.ts';
import { toSubscriptionResource } from '../../src/modules/subscriptions/resource.ts';
import { runDueTransitions, Scheduler } from '../../src/workers/scheduler.ts';
import { createTestApp, frozenClock, services, type TestApp } from '../helpers/harness.ts';
import { DAY, type Scenario, scenario } from '../helpers/scenario.ts';

const START = '2026-01-31T10:00:00.000Z';
let app: TestApp;
beforeAll(async () => {
  app = await createTestApp({ clock: frozenClock(START) });
});
afterAll(async () => app?.close());
beforeEach(() => {
  (app.clock as ReturnType<typeof frozenClock>).set(START);
});

const db = () => app.runtime.deps.db;
const stored = async (id: string) =>
  toSubscription(
    await db().selectFrom('subscriptions').selectAll().where('id', '=', id).executeTakeFirstOrThrow(),
  );
const audits = (customerId: string, action?: string) => {
  let q = db().selectFrom('audit_events').selectAll().where('customer_id', '=', customerId);
  if (action) q = q.where('action', '=', action);
  return q.orderBy('chain_index').execute();
};
const transitions = (id: string) =>
  db().selectFrom('subscription_transitions').selectAll().where('subscription_id', '=', id).execute();
/** Every plan in these tests has one version. */
const plans = { latestVersion: () => 1 };

function catalog(): ReturnType<typeof scenario> {
  return scenario(app)
    .feature('sso', 'boolean')
    .plan('basic', [])
    .plan('pro', [{ feature: 'sso' }])
    .plan('trialled', [{ feature: 'sso' }], {
      trial: { days: 7, on_end: 'downgrade', downgrade_to: 'basic' },
    });
}

describe('runOnce', () => {
  it('persists a trial end once, audited by the system, with its outbox event', async () => {
    const s = await catalog().customer('acme').onPlan('trialled');
    const id = s.subscriptionId();
    s.advance(8 * DAY);
    expect((await stored(id)).status).toBe('trialing');
    await app.runtime.scheduler.runOnce();
    const after = await stored(id);
    expect(after).toMatchObject({ status: 'active', planKey: s.key('basic') });
    const [event] = await audits(s.customerId, 'subscription.trial_downgraded');
    expect(event).toMatchObject({ actor: { type: 'system', name: 'scheduler' }, target: { id } });
    expect(await transitions(id)).toEqual([
      expect.objectContaining({ key: `${id}:trial_end:2026-02-07T10:00:00.000Z`, event: 'trial_end' }),
    ]);
    const outbox = await db()
      .selectFrom('outbox')
      .select('payload')
      .where('customer_id', '=', s.customerId)
      .where('topic', '=', 'subscription.updated')
      .execute();
    expect(outbox.map((o) => o.payload.action)).toEqual([
      'subscription.created',
      'subscription.trial_downgraded',
    ]);

    const count = (await audits(s.customerId)).length;
    await app.runtime.scheduler.runOnce();
    await app.runtime.scheduler.runOnce();
    expect(await audits(s.customerId)).toHaveLength(count);
    expect(await stored(id)).toEqual(after);
  });

  it('records a grace end once, then keeps rolling periods while past_due', async () => {
    const s = await catalog().customer('acme').onPlan('pro');
    const id = s.subscriptionId();
    await s.command('payment-failed');
    s.advance(4 * DAY);
    await app.runtime.scheduler.runOnce();
    await app.runtime.scheduler.runOnce();
    expect((await audits(s.customerId, 'subscription.grace_ended')).map((a) => a.actor.name)).toEqual([
      'scheduler',
    ]);
    expect((await transitions(id)).map((t) => t.event)).toEqual(['grace_end']);
    s.at('2026-03-01T00:00:00Z');
    await app.runtime.scheduler.runOnce();
    expect(await stored(id)).toMatchObject({
      status: 'past_due',
      currentPeriodEnd: new Date('2026-03-31T10:00:00Z'),
    });
    expect(await audits(s.customerId, 'subscription.renewed')).toHaveLength(1);
    expect(await audits(s.customerId, 'subscription.grace_ended')).toHaveLength(1);
  });

  it('lets commands persist what time did first, credited to the system', async () => {
    const s = await catalog().customer('acme').onPlan('pro');
    s.at('2026-04-01T00:00:00Z');
    const res = await s.command('cancel', { timing: 'immediate' });
    expect(res.body).toMatchObject({ status: 'canceled', current_period_start: '2026-03-31T10:00:00.000Z' });
    const actions = (await audits(s.customerId)).map((a) => `${a.actor.type}:${a.action}`);
    expect(actions.filter((a) => a === 'system:subscription.renewed')).toHaveLength(2);
    expect(actions.at(-1)).toBe('api_key:subscription.canceled');
  });

  it('several workers at once record each transition exactly once', async () => {
    const subs: Scenario[] = [];
    for (let i = 0; i < 12; i++) subs.push(await catalog().customer(`c${i}`).onPlan('pro'));
    const now = new Date('2026-05-01T00:00:00Z');
    await Promise.all([0, 1, 2].map(() => runDueTransitions(app.runtime.deps, now, { batchSize: 5 })));
    for (const s of subs) {
      const renewed = await audits(s.customerId, 'subscription.renewed');
      expect(renewed).toHaveLength(3);
      expect(await transitions(s.subscriptionId())).toHaveLength(3);
      expect((await stored(s.subscriptionId())).currentPeriodEnd).toEqual(new Date('2026-05-31T10:00:00Z'));
    }
  });
});

describe('what the scheduler persists equals stateAt at that instant', () => {
  type Command = readonly [string, Record<string, unknown>?] | null;
  const command = fc.constantFrom<Command>(
    null,
    ['pause'],
    ['resume'],
    ['payment-failed'],
    ['payment-recovered'],
    ['convert'],
    ['uncancel'],
    ['cancel', { timing: 'period_end' }],
    ['change', { plan: 'basic', timing: 'period_end' }],
    ['change', { plan: 'pro', timing: 'immediate' }],
  );
  const step = fc.record({ advance: fc.integer({ min: 0, max: 70 * DAY }), command });

  it('for random commands and time jumps', async () => {
    const base = await catalog();
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.array(step, { minLength: 1, maxLength: 6 }), async (trial, steps) => {
        base.at(START);
        await base.customer(`p${Math.random().toString(36).slice(2, 10)}`);
        await base.subscribe(trial ? 'trialled' : 'pro');
        const id = base.subscriptionId(trial ? 'trialled' : 'pro');
        for (const { advance, command } of steps) {
          base.advance(advance);
          if (command) {
            const [verb, body] = command;
            const payload = body?.plan ? { ...body, plan: base.key(body.plan as string) } : body;
            await base.command(verb, payload, trial ? 'trialled' : 'pro');
          }
          const now = base.now();
          const expected = stateAt(await stored(id), now, plans);
          await app.runtime.scheduler.runOnce(now);
          expect(await stored(id)).toEqual(expected);
          expect(await base.subscription(trial ? 'trialled' : 'pro')).toEqual(
            toSubscriptionResource(expected),
          );
        }
      }),
      { numRuns: 15 },
    );
  });
});

describe('running by itself', () => {
  async function waitFor(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
    const until = Date.now() + ms;
    while (!(await check())) {
      if (Date.now() > until) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('runs on a timer in process without Redis', async () => {
    const s = await catalog().customer('acme').onPlan('trialled');
    s.advance(8 * DAY);
    const scheduler = new Scheduler(app.runtime.deps, { intervalMs: 50 });
    await scheduler.start();
    try {
      await waitFor(async () => (await stored(s.subscriptionId())).status === 'active');
    } finally {
      await scheduler.stop();
    }
  });

  it.runIf(services.redis)('runs as a BullMQ repeatable job with Redis', async () => {
    const redisApp = await createTestApp({ clock: frozenClock(START), redis: true });
    try {
      const s = await scenario(redisApp)
        .plan('trialled', [], { trial: { days: 7, on_end: 'cancel' } })
        .customer('acme')
        .onPlan('trialled');
      s.advance(8 * DAY);
      const scheduler = new Scheduler(redisApp.runtime.deps, { intervalMs: 100 });
      await scheduler.start();
      try {
        const row = () =>
          redisApp.runtime.deps.db
            .selectFrom('subscriptions')
            .select('status')
            .where('id', '=', s.subscriptionId());
        await waitFor(async () => (await row().executeTakeFirstOrThrow()).status === 'expired');
        const keys = await redisApp.runtime.deps.redis!.keys(`${redisApp.redisPrefix}scheduler:*`);
        expect(keys.length).toBeGreaterThan(0);
      } finally {
        await scheduler.stop();
      }
    } finally {
      await redisApp.close();
    }
  });
});
