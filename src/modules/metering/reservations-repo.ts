/** Reservation rows: the durable record of every hold (both stores), and the sweeper's work list. */
import type { Selectable } from 'kysely';
import type { Db } from '../../platform/db.ts';
import type { Reservation, ReservationStatus } from './store.ts';
import type { ReservationsTable } from './tables.ts';

function toReservation(row: Selectable<ReservationsTable>): Reservation {
  return {
    id: row.id,
    customerId: row.customer_id,
    feature: row.feature,
    amount: row.amount,
    committedAmount: row.committed_amount,
    status: row.status as ReservationStatus,
    period: { start: row.period_start, end: row.period_end },
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    settledAt: row.settled_at,
  };
}

export async function insertReservation(db: Db, environment: string, r: Reservation): Promise<void> {
  await db
    .insertInto('reservations')
    .values({
      id: r.id,
      environment,
      customer_id: r.customerId,
      feature: r.feature,
      amount: r.amount,
      committed_amount: null,
      period_start: r.period.start,
      period_end: r.period.end,
      status: 'held',
      expires_at: r.expiresAt,
      created_at: r.createdAt,
    })
    .execute();
}

export async function findReservationRow(
  db: Db,
  environment: string,
  id: string,
): Promise<Reservation | null> {
  const row = await db
    .selectFrom('reservations')
    .selectAll()
    .where('environment', '=', environment)
    .where('id', '=', id)
    .executeTakeFirst();
  return row ? toReservation(row) : null;
}

/** Moves a held reservation to its final state; a row already settled keeps its state. */
export async function settleReservation(
  db: Db,
  environment: string,
  id: string,
  status: Exclude<ReservationStatus, 'held'>,
  committedAmount: number | null,
  at: Date,
): Promise<Reservation | null> {
  const row = await db
    .updateTable('reservations')
    .set({ status, committed_amount: committedAmount, settled_at: at })
    .where('environment', '=', environment)
    .where('id', '=', id)
    .where('status', '=', 'held')
    .returningAll()
    .executeTakeFirst();
  return row ? toReservation(row) : findReservationRow(db, environment, id);
}

/** Held reservations whose time ran out, oldest first. */
export async function dueReservations(
  db: Db,
  now: Date,
  limit = 500,
): Promise<Array<Reservation & { environment: string }>> {
  const rows = await db
    .selectFrom('reservations')
    .selectAll()
    .where('status', '=', 'held')
    .where('expires_at', '<=', now)
    .orderBy('expires_at')
    .limit(limit)
    .execute();
  return rows.map((row) => ({ ...toReservation(row), environment: row.environment }));
}
