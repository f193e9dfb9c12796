/**
 * Reservations in Postgres mode: the row is the hold. Live holds (status `held`, not yet
 * expired) count as used in every check, so an expired hold stops counting at once; the sweeper
 * only moves its status on.
 */
import { sql } from 'kysely';
import type { Db, Tx } from '../../../platform/db.ts';
import { findReservationRow, insertReservation, settleReservation } from '../reservations-repo.ts';
import type { HoldRequest, Reservation, ReservationStatus } from '../store.ts';
import { lockCustomer } from './state.ts';

export class PostgresReservations {
  constructor(private readonly db: Db) {}

  async insert(tx: Tx, environment: string, request: HoldRequest, now: Date): Promise<Reservation> {
    const reservation: Reservation = {
      id: request.id,
      customerId: request.customerId,
      feature: request.feature,
      amount: request.amount,
      committedAmount: null,
      status: 'held',
      period: request.terms.period,
      expiresAt: request.expiresAt,
      createdAt: now,
      settledAt: null,
    };
    await insertReservation(tx, environment, reservation);
    return reservation;
  }

  /** The reservation when it can no longer be committed (settled, or just now found expired). */
  async settleIfNotHeld(tx: Tx, environment: string, id: string, now: Date): Promise<Reservation | null> {
    const row = await tx
      .selectFrom('reservations')
      .select(['status', 'expires_at'])
      .where('environment', '=', environment)
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    if (!row) return null;
    if (row.status !== 'held') return this.find(tx, environment, id);
    if (row.expires_at.getTime() <= now.getTime())
      return this.settle(tx, environment, id, 'expired', null, now);
    return null;
  }

  async settle(
    tx: Tx,
    environment: string,
    id: string,
    status: Exclude<ReservationStatus, 'held'>,
    amount: number | null,
    now: Date,
  ): Promise<Reservation | null> {
    return settleReservation(tx, environment, id, status, amount, now);
  }

  release(environment: string, reservation: Reservation, now: Date): Promise<Reservation> {
    return this.db.transaction().execute(async (tx) => {
      await lockCustomer(tx, environment, reservation.customerId);
      const status = reservation.expiresAt.getTime() <= now.getTime() ? 'expired' : 'released';
      return (await this.settle(tx, environment, reservation.id, status, null, now)) ?? reservation;
    });
  }

  find(db: Db | Tx, environment: string, id: string): Promise<Reservation | null> {
    return findReservationRow(db, environment, id);
  }

  async sweep(now: Date): Promise<number> {
    const result = await this.db
      .updateTable('reservations')
      .set({ status: 'expired', settled_at: sql<Date>`${now}` })
      .where('status', '=', 'held')
      .where('expires_at', '<=', now)
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }
}
