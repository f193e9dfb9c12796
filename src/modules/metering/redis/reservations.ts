/**
 * Reservations in Redis mode. Redis decides (the hold lives in a sorted set scored by its expiry,
 * so a hold past its time stops counting the moment it expires, even before a sweep); the
 * reservation row in Postgres is the durable record and the sweeper's work list.
 */
import type { Db } from '../../../platform/db.ts';
import {
  dueReservations,
  findReservationRow,
  insertReservation,
  settleReservation,
} from '../reservations-repo.ts';
import type {
  CommitAnswer,
  HoldAnswer,
  HoldRequest,
  Reservation,
  ReservationStatus,
  StoredPeriod,
  UsageEvent,
  UsageTerms,
} from '../store.ts';
import { grantArgs } from './args.ts';
import type { UsageKeys } from './keys.ts';
import { type LuaScript, SCRIPTS } from './scripts.ts';
import { decodeAnswer } from './wire.ts';

/** A settled reservation's state is remembered this long after its expiry. */
const STATE_GRACE_MS = 8 * 86_400_000;
const STATES: Record<string, Exclude<ReservationStatus, 'held'>> = {
  c: 'committed',
  r: 'released',
  x: 'expired',
};

/** What reservations need of the Redis store (the store itself: see redis/store.ts). */
export interface ReservationHost {
  readonly keys: UsageKeys;
  readonly db: Db;
  readonly options: { idempotencyTtlMs: number };
  write(lua: LuaScript, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown>;
  registerSlots(environment: string, customerIds: string[]): Promise<void>;
  slotOf(environment: string, customerId: string): number;
  ttlOf(period: StoredPeriod, now: Date): number;
  periodArgs(period: StoredPeriod): [string | number, number];
  head(environment: string, event: UsageEvent, reservationId: string | null): string;
}

export class RedisReservations {
  constructor(private readonly store: ReservationHost) {}

  async hold(environment: string, request: HoldRequest, now: Date): Promise<HoldAnswer> {
    const { keys } = this.store;
    const base = keys.customer(environment, request.customerId);
    const { terms } = request;
    const raw = await this.store.write(
      SCRIPTS.hold,
      [
        keys.counter(base, request.feature, terms.period),
        keys.credit(base, request.feature),
        keys.holds(base, request.feature, terms.period),
        keys.reservationState(base, request.id),
      ],
      [
        now.getTime(),
        terms.limit ?? '',
        terms.overage,
        request.amount,
        request.expiresAt.getTime(),
        member(request.id, request.amount),
        this.store.ttlOf(terms.period, now),
        request.expiresAt.getTime() - now.getTime() + STATE_GRACE_MS,
        ...this.store.periodArgs(terms.period),
        ...grantArgs(terms),
      ],
    );
    const answer = decodeAnswer(String(raw));
    if (!answer.accepted) return { held: false, answer };
    const reservation: Reservation = {
      id: request.id,
      customerId: request.customerId,
      feature: request.feature,
      amount: request.amount,
      committedAmount: null,
      status: 'held',
      period: terms.period,
      expiresAt: request.expiresAt,
      createdAt: now,
      settledAt: null,
    };
    try {
      await insertReservation(this.store.db, environment, reservation);
    } catch (err) {
      await this.releaseInRedis(environment, reservation, now);
      throw err;
    }
    return { held: true, reservation, answer };
  }

  async commit(
    environment: string,
    reservation: Reservation,
    amount: number,
    terms: UsageTerms,
    now: Date,
  ): Promise<CommitAnswer> {
    const { keys } = this.store;
    const base = keys.customer(environment, reservation.customerId);
    const period = reservation.period;
    const key = `reservation:${reservation.id}`;
    await this.store.registerSlots(environment, [reservation.customerId]);
    const event = {
      customerId: reservation.customerId,
      feature: reservation.feature,
      idempotencyKey: key,
      value: amount,
      member: null,
      occurredAt: now,
      terms: { ...terms, period },
    };
    const raw = String(
      await this.store.write(
        SCRIPTS.commit,
        [
          keys.counter(base, reservation.feature, period),
          keys.credit(base, reservation.feature),
          keys.idempotency(base, key),
          keys.streamOfSlot(this.store.slotOf(environment, reservation.customerId)),
          keys.holds(base, reservation.feature, period),
          keys.reservationState(base, reservation.id),
        ],
        [
          now.getTime(),
          member(reservation.id, reservation.amount),
          reservation.amount,
          amount,
          terms.limit ?? '',
          terms.overage,
          this.store.ttlOf(period, now),
          this.store.options.idempotencyTtlMs,
          terms.thresholds.join(','),
          this.store.head(environment, event, reservation.id),
          ...this.store.periodArgs(period),
          Math.max(0, reservation.expiresAt.getTime() - now.getTime()) + STATE_GRACE_MS,
          ...grantArgs(terms),
        ],
      ),
    );
    if (raw.startsWith('s|')) {
      const status = STATES[raw.slice(2)] ?? 'expired';
      const settled = await settleReservation(this.store.db, environment, reservation.id, status, null, now);
      return { committed: false, reservation: settled ?? { ...reservation, status } };
    }
    const answer = decodeAnswer(raw.slice(2));
    const settled = await settleReservation(
      this.store.db,
      environment,
      reservation.id,
      'committed',
      amount,
      now,
    );
    return { committed: true, reservation: settled ?? reservation, answer };
  }

  async release(environment: string, reservation: Reservation, now: Date): Promise<Reservation> {
    const status = await this.releaseInRedis(environment, reservation, now);
    const settled = await settleReservation(this.store.db, environment, reservation.id, status, null, now);
    return settled ?? { ...reservation, status };
  }

  find(environment: string, id: string): Promise<Reservation | null> {
    return findReservationRow(this.store.db, environment, id);
  }

  async sweep(now: Date): Promise<number> {
    const due = await dueReservations(this.store.db, now);
    for (const r of due) await this.release(r.environment, r, now);
    return due.length;
  }

  private async releaseInRedis(
    environment: string,
    reservation: Reservation,
    now: Date,
  ): Promise<Exclude<ReservationStatus, 'held'>> {
    const { keys } = this.store;
    const base = keys.customer(environment, reservation.customerId);
    const raw = String(
      await this.store.write(
        SCRIPTS.release,
        [
          keys.counter(base, reservation.feature, reservation.period),
          keys.holds(base, reservation.feature, reservation.period),
          keys.reservationState(base, reservation.id),
        ],
        [now.getTime(), member(reservation.id, reservation.amount), reservation.amount, STATE_GRACE_MS],
      ),
    );
    return STATES[raw.startsWith('s|') ? raw.slice(2) : raw] ?? 'expired';
  }
}

function member(id: string, amount: number): string {
  return `${id}|${amount}`;
}
