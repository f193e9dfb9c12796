/**
 * The Postgres store (no REDIS_URL): every event runs in a transaction that takes the customer's
 * advisory lock, replays a remembered answer if the idempotency key is known, computes the plan
 * with consume.ts, and writes the counter, the credit draws and the ledger row together.
 */
import type { CustomerSnapshot } from '../../../domain/types.ts';
import type { Clock } from '../../../platform/clock.ts';
import type { Db } from '../../../platform/db.ts';
import type { UsageQuery } from '../../entitlements/engine.ts';
import { answerFromJson } from '../answer.ts';
import { answerOf, holdFits } from '../consume.ts';
import { readingOf } from '../reading.ts';
import type {
  CommitAnswer,
  HoldAnswer,
  HoldRequest,
  Reservation,
  UsageAnswer,
  UsageEvent,
  UsageStore,
  UsageTerms,
} from '../store.ts';
import { storedPeriod } from '../store.ts';
import { consumeOne, priorAnswer } from './consume.ts';
import { PostgresReservations } from './reservations.ts';
import { loadCounter, loadGrantUsage, lockCustomer } from './state.ts';

export class PostgresUsageStore implements UsageStore {
  readonly kind = 'postgres' as const;
  readonly db: Db;
  private readonly reservations: PostgresReservations;

  constructor(
    db: Db,
    private readonly clock: Clock,
  ) {
    this.db = db;
    this.reservations = new PostgresReservations(this.db);
  }

  /** Nothing to set up: the counters are rows of the database. */
  async start(): Promise<void> {}

  stop(): void {}

  /** The counters are written with the ledger, in one transaction: nothing to rebuild. */
  async rebuild(): Promise<null> {
    return null;
  }

  async verify(): Promise<null> {
    return null;
  }

  /** No stream here: every event is in the ledger, or refused, when it is answered. */
  async requeue(): Promise<void> {
    throw new Error('the Postgres usage store keeps no stream: no record is ever set aside');
  }

  async record(environment: string, events: UsageEvent[], now: Date): Promise<UsageAnswer[]> {
    // One transaction per customer; a customer's events keep their order.
    const byCustomer = new Map<string, number[]>();
    events.forEach((e, i) => {
      byCustomer.set(e.customerId, [...(byCustomer.get(e.customerId) ?? []), i]);
    });
    const answers: UsageAnswer[] = new Array(events.length);
    for (const [customerId, indexes] of [...byCustomer].sort((a, b) => (a[0] < b[0] ? -1 : 1))) {
      await this.db.transaction().execute(async (tx) => {
        await lockCustomer(tx, environment, customerId);
        for (const i of indexes) answers[i] = await consumeOne(tx, environment, events[i]!, now);
      });
    }
    return answers;
  }

  async read(environment: string, snapshot: CustomerSnapshot, queries: UsageQuery[]) {
    const now = this.clock.now();
    const readings = new Map<string, ReturnType<typeof readingOf>>();
    await Promise.all(
      queries.map(async (q) => {
        const ref = {
          environment,
          customerId: snapshot.customerId,
          feature: q.feature,
          period: storedPeriod(q.period),
        };
        const [state, usage] = await Promise.all([
          loadCounter(this.db, ref, now),
          loadGrantUsage(this.db, environment, snapshot.customerId, q.feature),
        ]);
        readings.set(q.feature, readingOf(snapshot, q.feature, state, usage, now));
      }),
    );
    return readings;
  }

  hold(environment: string, request: HoldRequest, now: Date): Promise<HoldAnswer> {
    return this.db.transaction().execute(async (tx) => {
      await lockCustomer(tx, environment, request.customerId);
      const ref = {
        environment,
        customerId: request.customerId,
        feature: request.feature,
        period: request.terms.period,
      };
      const state = await loadCounter(tx, ref, now);
      const usage = await loadGrantUsage(tx, environment, request.customerId, request.feature);
      const fits = holdFits(state, usage, request.terms, request.amount);
      const after = fits ? { ...state, held: state.held + request.amount } : state;
      const answer: UsageAnswer = answerOf(fits, after, request.terms, usage);
      if (!fits) return { held: false, answer };
      const reservation = await this.reservations.insert(tx, environment, request, now);
      return { held: true, reservation, answer };
    });
  }

  commit(
    environment: string,
    reservation: Reservation,
    amount: number,
    terms: UsageTerms,
    now: Date,
  ): Promise<CommitAnswer> {
    return this.db.transaction().execute(async (tx) => {
      await lockCustomer(tx, environment, reservation.customerId);
      const prior = await priorAnswer(
        tx,
        environment,
        reservation.customerId,
        `reservation:${reservation.id}`,
      );
      const row = prior ? await this.reservations.find(tx, environment, reservation.id) : null;
      if (prior && row) return { committed: true, reservation: row, answer: answerFromJson(prior) };
      const settled = await this.reservations.settleIfNotHeld(tx, environment, reservation.id, now);
      if (settled) return { committed: false, reservation: settled };
      await this.reservations.settle(tx, environment, reservation.id, 'committed', amount, now);
      const event: UsageEvent = {
        customerId: reservation.customerId,
        feature: reservation.feature,
        idempotencyKey: `reservation:${reservation.id}`,
        value: amount,
        member: null,
        occurredAt: now,
        terms: { ...terms, period: reservation.period },
      };
      const answer = await consumeOne(tx, environment, event, now, reservation.id);
      const committed = await this.reservations.find(tx, environment, reservation.id);
      return { committed: true, reservation: committed ?? reservation, answer };
    });
  }

  release(environment: string, reservation: Reservation, now: Date): Promise<Reservation> {
    return this.reservations.release(environment, reservation, now);
  }

  findReservation(environment: string, id: string): Promise<Reservation | null> {
    return this.reservations.find(this.db, environment, id);
  }

  sweepExpired(now: Date): Promise<number> {
    return this.reservations.sweep(now);
  }

  async flush(): Promise<number> {
    return 0;
  }
}
