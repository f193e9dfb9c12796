/**
 * The durable usage ledger: one row per accepted event, unique per customer and idempotency key,
 * so writing a row twice (a redelivered stream entry) changes nothing. Threshold crossings ride
 * along: a unique row per period and threshold decides which crossing is announced, and its
 * outbox event is written in the same transaction.
 */
import { type RawBuilder, sql } from 'kysely';
import type { Db, Tx } from '../../platform/db.ts';
import { writeOutboxEvents } from '../../platform/outbox.ts';
import type { AnswerJson } from './answer.ts';
import { type MeteringTx, meteringDb } from './tables.ts';

export interface Crossing {
  threshold: number;
  used: number;
  limit: number;
}

export interface LedgerRow {
  environment: string;
  customerId: string;
  feature: string;
  idempotencyKey: string;
  value: number;
  counted: number;
  member: string | null;
  occurredAt: Date;
  periodStart: Date;
  periodEnd: Date | null;
  overage: number;
  creditDraws: Record<string, number>;
  answer: AnswerJson;
  reservationId: string | null;
  crossings: Crossing[];
}

const CHUNK = 2_000;

/** Appends rows in transactions of up to 2,000; returns how many were new. */
export async function appendToLedger(db: Db, rows: LedgerRow[]): Promise<number> {
  let inserted = 0;
  for (let i = 0; i < rows.length; i += CHUNK) {
    const chunk = rows.slice(i, i + CHUNK);
    inserted += await meteringDb(db)
      .transaction()
      .execute((tx) => writeLedgerRows(tx, chunk));
  }
  return inserted;
}

export async function writeLedgerRows(tx: MeteringTx, rows: LedgerRow[]): Promise<number> {
  if (rows.length === 0) return 0;
  const result = await tx
    .insertInto('usage_events')
    .values(
      rows.map((r) => ({
        environment: r.environment,
        customer_id: r.customerId,
        feature: r.feature,
        idempotency_key: r.idempotencyKey,
        value: r.value,
        counted: r.counted,
        member: r.member,
        occurred_at: r.occurredAt,
        period_start: r.periodStart,
        period_end: r.periodEnd,
        overage: r.overage,
        credit: Object.values(r.creditDraws).reduce((a, b) => a + b, 0),
        credit_draws: JSON.stringify(r.creditDraws),
        answer: JSON.stringify(r.answer),
        reservation_id: r.reservationId,
      })),
    )
    .onConflict((oc) => oc.columns(['environment', 'customer_id', 'idempotency_key']).doNothing())
    .executeTakeFirst();
  await announceCrossings(tx, rows);
  return Number(result.numInsertedOrUpdatedRows ?? 0);
}

async function announceCrossings(tx: MeteringTx, rows: LedgerRow[]): Promise<void> {
  const crossings = rows.flatMap((r) => r.crossings.map((c) => ({ row: r, ...c })));
  if (crossings.length === 0) return;
  const fresh = await tx
    .insertInto('usage_thresholds')
    .values(
      crossings.map((c) => ({
        environment: c.row.environment,
        customer_id: c.row.customerId,
        feature: c.row.feature,
        period_start: c.row.periodStart,
        threshold: c.threshold,
        used: c.used,
        limit: c.limit,
      })),
    )
    .onConflict((oc) =>
      oc.columns(['environment', 'customer_id', 'feature', 'period_start', 'threshold']).doNothing(),
    )
    .returningAll()
    .execute();
  const byEnvironment = new Map<string, typeof fresh>();
  for (const row of fresh)
    byEnvironment.set(row.environment, [...(byEnvironment.get(row.environment) ?? []), row]);
  for (const [environment, reached] of byEnvironment) {
    await writeOutboxEvents(
      tx as unknown as Tx,
      environment,
      reached.map((r) => ({
        topic: 'usage.threshold_reached',
        customerId: r.customer_id,
        payload: {
          customer_id: r.customer_id,
          feature: r.feature,
          threshold: r.threshold,
          period_start: r.period_start.toISOString(),
          used: r.used,
          limit: r.limit,
        },
      })),
    );
  }
}

export interface LedgerTotal {
  environment: string;
  customerId: string;
  feature: string;
  periodStart: Date;
  periodEnd: Date | null;
  counted: number;
  overage: number;
  credit: number;
  events: number;
}

/** Per-counter sums of the ledger, for periods ending after `since` (and those that never end). */
export async function ledgerTotals(
  db: Db,
  since: Date,
  environment?: string,
  filter?: RawBuilder<unknown>,
): Promise<LedgerTotal[]> {
  let query = meteringDb(db)
    .selectFrom('usage_events')
    .select([
      'environment',
      'customer_id',
      'feature',
      'period_start',
      'period_end',
      sql<number>`sum(counted)`.as('counted'),
      sql<number>`sum(overage)`.as('overage'),
      sql<number>`sum(credit)`.as('credit'),
      sql<number>`count(*)`.as('events'),
    ])
    .where((eb) => eb.or([eb('period_end', 'is', null), eb('period_end', '>', since)]))
    .groupBy(['environment', 'customer_id', 'feature', 'period_start', 'period_end']);
  if (environment !== undefined) query = query.where('environment', '=', environment);
  if (filter !== undefined) query = query.where(filter as RawBuilder<boolean>);
  const rows = await query.execute();
  return rows.map((r) => ({
    environment: r.environment,
    customerId: r.customer_id,
    feature: r.feature,
    periodStart: r.period_start,
    periodEnd: r.period_end,
    counted: Number(r.counted),
    overage: Number(r.overage),
    credit: Number(r.credit),
    events: Number(r.events),
  }));
}
