/**
 * The contract every usage store keeps, run against each (metering-stores.test.ts): the Redis
 * store and the Postgres store must give the same answers to the same events.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CreditGrant } from '../../src/domain/types.ts';
import type { UsageEvent, UsageStore } from '../../src/modules/metering/store.ts';
import type { ManualClock } from '../../src/platform/clock.ts';
import type { Db } from '../../src/platform/db.ts';
import { event, grant, knownCustomer, period, snapshot, terms } from './metering-fixtures.ts';

const env = 'test';

export interface StoreFixture {
  store: UsageStore;
  db: Db;
  clock: ManualClock;
  close(): Promise<void>;
}

export function describeUsageStoreContract(
  name: string,
  makeStore: () => Promise<StoreFixture>,
  enabled = true,
): void {
  describe.skipIf(!enabled)(`usage store contract: ${name}`, () => {
    let f: StoreFixture;
    const now = () => f.clock.now();
    const record = (...events: UsageEvent[]) => f.store.record(env, events, now());
    const read = async (
      customerId: string,
      aggregation: 'sum' | 'max' | 'unique' = 'sum',
      grants: CreditGrant[] = [],
    ) =>
      (
        await f.store.read(env, snapshot(customerId, aggregation, grants), [{ feature: 'calls', period }])
      ).get('calls');
    const ledger = async (customerId: string) => {
      await f.store.flush({ claimIdleMs: 0 });
      const r = await sql<{ n: string; counted: string | null }>`
        SELECT count(*) AS n, sum(counted) AS counted FROM usage_events WHERE customer_id = ${customerId}`.execute(
        f.db,
      );
      return { events: Number(r.rows[0]!.n), counted: Number(r.rows[0]!.counted ?? 0) };
    };
    beforeAll(async () => {
      f = await makeStore();
    });
    afterAll(async () => f?.close());

    it('counts, answers with the standing, and replays an idempotency key without counting', async () => {
      const c = await knownCustomer(f.db);
      const first = event(c, { value: 30 });
      const [a] = await record(first);
      expect(a).toMatchObject({
        accepted: true,
        used: 30,
        limit: 100,
        remaining: 70,
        overage: 0,
        creditUsed: 0,
      });
      expect(a!.resetsAt).toEqual(period.end);
      expect(a!.periodStart).toEqual(period.start);
      const [again] = await record({ ...first, value: 50 });
      expect(again).toEqual(a);
      expect((await read(c))?.used).toBe(30);
      expect(await ledger(c)).toEqual({ events: 1, counted: 30 });
    });

    it('refuses an event that does not fit under deny whole, and remembers the refusal', async () => {
      const c = await knownCustomer(f.db);
      await record(event(c, { value: 95 }));
      const big = event(c, { value: 10 });
      const [refused] = await record(big);
      expect(refused).toMatchObject({ accepted: false, reason: 'limit_exceeded', used: 95, remaining: 5 });
      await record(event(c, { value: 5 }));
      expect(await record(big)).toEqual([refused]);
      expect((await read(c))?.used).toBe(100);
      expect(await ledger(c)).toEqual({ events: 2, counted: 100 });
    });

    it('under allow records the part past the limit as overage', async () => {
      const c = await knownCustomer(f.db);
      const t = terms({ limit: 10, overage: 'allow' });
      const answers = await record(event(c, { value: 8, terms: t }), event(c, { value: 5, terms: t }));
      expect(answers[1]).toMatchObject({ accepted: true, used: 13, overage: 3, remaining: 0 });
    });

    it('draws credit in the order given and reports exact grant balances', async () => {
      const c = await knownCustomer(f.db);
      const grants = [grant(c, 'g-b', 5), grant(c, 'g-a', 5)];
      const t = terms({ limit: 10, grants: grants.map((g) => ({ id: g.id, amount: g.amount })) });
      const answers = await record(
        event(c, { value: 12, terms: t }),
        event(c, { value: 4, terms: t }),
        event(c, { value: 5, terms: t }),
      );
      expect(answers.map((a) => [a.accepted, a.creditUsed, a.remaining])).toEqual([
        [true, 2, 8],
        [true, 4, 4],
        [false, 0, 4],
      ]);
      const reading = await read(c, 'sum', grants);
      expect(reading).toMatchObject({ used: 16, creditUsed: 6, grantBalances: { 'g-b': 0, 'g-a': 4 } });
    });

    it('accepts exactly the limit from 200 concurrent single events, and the ledger agrees', async () => {
      const c = await knownCustomer(f.db);
      const answers = await Promise.all(Array.from({ length: 200 }, () => record(event(c))));
      expect(answers.flat().filter((a) => a.accepted)).toHaveLength(100);
      expect((await read(c))?.used).toBe(100);
      expect(await ledger(c)).toEqual({ events: 100, counted: 100 });
    });

    it('counts a duplicate idempotency key sent concurrently once, and answers every copy alike', async () => {
      const c = await knownCustomer(f.db);
      const once = event(c, { value: 7 });
      const answers = (await Promise.all(Array.from({ length: 20 }, () => record(once)))).flat();
      expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
      expect((await read(c))?.used).toBe(7);
      expect(await ledger(c)).toEqual({ events: 1, counted: 7 });
    });

    it('keeps the peak for max features', async () => {
      const c = await knownCustomer(f.db);
      const t = terms({ aggregation: 'max', limit: 50 });
      const answers = await record(...[10, 30, 20, 60, 45].map((value) => event(c, { value, terms: t })));
      expect(answers.map((a) => (a.accepted ? a.used : 'refused'))).toEqual([10, 30, 30, 'refused', 45]);
      expect((await read(c, 'max'))?.used).toBe(45);
    });

    it('counts distinct members for unique features', async () => {
      const c = await knownCustomer(f.db);
      const t = terms({ aggregation: 'unique', limit: 3 });
      const answers = await record(
        ...['u1', 'u2', 'u1', 'u3', 'u4', 'u2'].map((member) => event(c, { member, terms: t })),
      );
      expect(answers.map((a) => (a.accepted ? a.used : 'refused'))).toEqual([1, 2, 2, 3, 'refused', 3]);
      expect(await ledger(c)).toEqual({ events: 5, counted: 3 });
    });

    it('announces each threshold once even when concurrent events cross it together', async () => {
      const c = await knownCustomer(f.db);
      const t = terms({ limit: 100, overage: 'allow', thresholds: [50, 80, 100] });
      await Promise.all(Array.from({ length: 60 }, () => record(event(c, { value: 3, terms: t }))));
      await f.store.flush({ claimIdleMs: 0 });
      const rows = await sql<{ payload: Record<string, unknown> }>`
        SELECT payload FROM outbox WHERE topic = 'usage.threshold_reached' AND customer_id = ${c}`.execute(
        f.db,
      );
      const payloads = rows.rows.map((r) => r.payload);
      expect(payloads.map((p) => p.threshold).sort()).toEqual([100, 50, 80]);
      for (const p of payloads) {
        expect(p).toMatchObject({
          customer_id: c,
          feature: 'calls',
          limit: 100,
          period_start: period.start.toISOString(),
        });
        expect(p.used as number).toBeGreaterThanOrEqual(((p.threshold as number) * 100) / 100);
      }
    });

    it('holds count as used until committed in part (the rest freed) or released', async () => {
      const c = await knownCustomer(f.db);
      const t = terms({ limit: 10 });
      const hold = (amount: number, ttlMs = 60_000) =>
        f.store.hold(
          env,
          {
            id: `res_${randomBytes(5).toString('hex')}`,
            customerId: c,
            feature: 'calls',
            amount,
            expiresAt: new Date(now().getTime() + ttlMs),
            terms: t,
          },
          now(),
        );
      const first = await hold(6);
      expect(first).toMatchObject({ held: true, answer: { used: 6, remaining: 4 } });
      expect((await hold(5)).held).toBe(false);
      expect((await record(event(c, { value: 5, terms: t })))[0]!.accepted).toBe(false);
      expect((await read(c))?.used).toBe(6);
      if (!first.held) throw new Error('unreachable');
      const committed = await f.store.commit(env, first.reservation, 4, t, now());
      expect(committed).toMatchObject({
        committed: true,
        reservation: { status: 'committed', committedAmount: 4 },
        answer: { used: 4, remaining: 6 },
      });
      const again = await f.store.commit(env, first.reservation, 4, t, now());
      expect(again.committed && again.answer.used).toBe(4);
      const second = await hold(3);
      if (!second.held) throw new Error('expected a hold');
      expect(await f.store.release(env, second.reservation, now())).toMatchObject({ status: 'released' });
      expect((await read(c))?.used).toBe(4);
      expect((await f.store.commit(env, second.reservation, 1, t, now())).committed).toBe(false);
      expect(await ledger(c)).toEqual({ events: 1, counted: 4 });
    });

    it('stops counting a hold when it expires, and the sweeper settles it', async () => {
      const c = await knownCustomer(f.db);
      const t = terms({ limit: 10 });
      const held = await f.store.hold(
        env,
        {
          id: `res_${randomBytes(5).toString('hex')}`,
          customerId: c,
          feature: 'calls',
          amount: 10,
          expiresAt: new Date(now().getTime() + 1000),
          terms: t,
        },
        now(),
      );
      expect((await record(event(c, { terms: t })))[0]!.accepted).toBe(false);
      f.clock.advance(1001);
      expect((await read(c))?.used).toBe(0);
      expect((await record(event(c, { terms: t })))[0]!.accepted).toBe(true);
      expect(await f.store.sweepExpired(now())).toBeGreaterThanOrEqual(1);
      if (!held.held) throw new Error('expected a hold');
      expect(await f.store.findReservation(env, held.reservation.id)).toMatchObject({ status: 'expired' });
      expect((await f.store.commit(env, held.reservation, 1, t, now())).committed).toBe(false);
    });
  });
}
