/**
 * The durable usage ledger: one row per accepted event, unique per customer and idempotency key,
 * so writing a row twice (a redelivered stream entry) changes nothing. Threshold crossings ride
 * along: a unique row per period and threshold decides which crossing is announced, and its
 * outbox event is written in the same transaction.
 */
import { type RawBuilder, sql } from 'kysely';
import type { Db, Tx } from '../../../platform/db.ts';
import { writeOutboxEvents } from '../../../platform/outbox.ts';
import type { LedgerCopier } from './copy.ts';
import { LedgerLines } from './lines.ts';
import type { LedgerRow } from './row.ts';

const CHUNK = 2_000;

/**
 * Appends rows; returns how many were new. See `appendLines`.
 */
export function appendToLedger(db: Db, rows: LedgerRow[], copier?: LedgerCopier | null): Promise<number> {
  return appendLines(db, LedgerLines.ofRows(rows), copier);
}

/**
 * Appends ledger lines; returns how many were new. With a copier (real PostgreSQL) they go in
 * through COPY in one transaction, and their threshold crossings in a second one: if that one
 * fails, the flush fails, its stream entries stay pending, and their redelivery meets the unique
 * index, which sends it down the insert below, where the crossings are written (once: they are
 * unique too). Without a copier, or when a row is in the ledger already, they are read back as rows
 * and inserted in transactions of up to 2,000 that skip what is there.
 */
export async function appendLines(db: Db, lines: LedgerLines, copier?: LedgerCopier | null): Promise<number> {
  if (copier && lines.count > 0 && (await copier.copy(lines.text()))) {
    if (lines.crossed.length > 0) {
      const crossing = lines.crossingRows();
      await db.transaction().execute((tx) => announceCrossings(tx, crossing));
    }
    return lines.count;
  }
  const rows = lines.rows();
  let inserted = 0;
  for (let i = 0; i < rows.length; i += CHUNK) {
    const chunk = rows.slice(i, i + CHUNK);
    inserted += await db.transaction().execute((tx) => writeLedgerRows(tx, chunk));
  }
  return inserted;
}

export async function writeLedgerRows(tx: Tx, rows: LedgerRow[]): Promise<number> {
  if (rows.length === 0) return 0;
  // One array per column (unnest) instead of a parameter per value: far less work per row.
  const column = <T>(pick: (r: LedgerRow) => T) => rows.map(pick);
  const result = await sql`
    INSERT INTO usage_events (environment, customer_id, feature, idempotency_key, value, counted, member,
      occurred_at, period_start, period_end, overage, credit, credit_draws, answer, reservation_id)
    SELECT * FROM unnest(${column((r) => r.environment)}::text[], ${column((r) => r.customerId)}::text[],
      ${column((r) => r.feature)}::text[], ${column((r) => r.idempotencyKey)}::text[],
      ${column((r) => r.value)}::numeric[], ${column((r) => r.counted)}::numeric[], ${column((r) => r.member)}::text[],
      ${column((r) => r.occurredAt.toISOString())}::timestamptz[], ${column((r) => r.periodStart.toISOString())}::timestamptz[],
      ${column((r) => r.periodEnd?.toISOString() ?? null)}::timestamptz[], ${column((r) => r.overage)}::numeric[],
      ${column((r) => creditOf(r))}::numeric[], ${column((r) => JSON.stringify(r.creditDraws))}::jsonb[],
      ${column((r) => JSON.stringify(r.answer))}::jsonb[], ${column((r) => r.reservationId)}::text[])
    ON CONFLICT (environment, customer_id, idempotency_key) DO NOTHING`.execute(tx);
  await announceCrossings(tx, rows);
  return Number(result.numAffectedRows ?? 0);
}

function creditOf(r: LedgerRow): number {
  let total = 0;
  for (const amount of Object.values(r.creditDraws)) total += amount;
  return total;
}

async function announceCrossings(tx: Tx, rows: LedgerRow[]): Promise<void> {
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
  let query = db
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
