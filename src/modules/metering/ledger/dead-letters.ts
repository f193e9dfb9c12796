/**
 * Usage records the ledger will not take, set aside so they hold back no other event: the flusher
 * writes the rest of a read and moves these to `usage_dead_letters`, then acknowledges the read's
 * entries whole (redis/flusher.ts). Reasons:
 * - `unknown_customer`: the record's environment and customer are not in this database's customers
 *   table (a stream another deployment wrote to, say); no ledger row is written for it.
 * - `ledger_refused`: PostgreSQL refused the row itself (a NUL byte text cannot hold, a value no
 *   column takes); `detail` has PostgreSQL's message.
 * One row per event of an entry, unique per (stream, entry id, position): an entry settled again
 * after a crash adds nothing. The operator lists them with `tessera usage dead-letters`, and
 * replays (the record goes back to its stream) or discards one (docs/operations.md).
 */
import { sql } from 'kysely';
import type { Db } from '../../../platform/db.ts';

export type DeadLetterReason = 'unknown_customer' | 'ledger_refused';

export interface DeadLetter {
  stream: string;
  entryId: string;
  position: number;
  environment: string;
  customerId: string;
  /** The stream record as it was read. */
  record: string;
  reason: DeadLetterReason;
  detail: string | null;
}

/**
 * Whether an error says the ledger refuses the rows themselves (so the same rows would always be
 * refused), not that the database could not be reached or was busy: PostgreSQL's data exceptions
 * (class 22), integrity violations (class 23) and a row past a limit (54000, such as an index row
 * too large), and the encoder's refusals before anything is sent.
 */
export function refusedByLedger(err: unknown): boolean {
  if (err instanceof RangeError || err instanceof SyntaxError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23') || code === '54000');
}

/** PostgreSQL text cannot hold NUL: the columns that describe a record show it as U+FFFD. */
function printable(value: string): string {
  return value.includes('\u0000') ? value.replaceAll('\u0000', '\uFFFD') : value;
}

/**
 * Of the given (environment, customer) pairs, those this database has no customer for (deleted
 * customers are still known: their events were accepted while they existed). One query.
 */
export async function unknownCustomers(db: Db, pairs: Array<[environment: string, customerId: string]>) {
  const unknown = new Set<number>();
  const asked: number[] = [];
  for (let i = 0; i < pairs.length; i++) {
    const [environment, customerId] = pairs[i]!;
    // Text with a NUL cannot be in any table (and cannot be sent as text).
    if (environment.includes('\u0000') || customerId.includes('\u0000')) unknown.add(i);
    else asked.push(i);
  }
  if (asked.length === 0) return unknown;
  const { rows } = await sql<{ i: number }>`
    SELECT k.i FROM unnest(${asked.map((i) => pairs[i]![0])}::text[], ${asked.map((i) => pairs[i]![1])}::text[],
      ${asked}::int[]) AS k(environment, customer_id, i)
    WHERE NOT EXISTS (SELECT 1 FROM customers c
      WHERE c.environment = k.environment AND c.customer_id = k.customer_id)`.execute(db);
  for (const row of rows) unknown.add(Number(row.i));
  return unknown;
}

/** Writes the dead letters not there yet (one transaction); returns those it wrote. */
export async function writeDeadLetters(db: Db, letters: DeadLetter[]): Promise<DeadLetter[]> {
  if (letters.length === 0) return [];
  const written = await db
    .insertInto('usage_dead_letters')
    .values(
      letters.map((l) => ({
        stream: l.stream,
        entry_id: l.entryId,
        position: l.position,
        environment: printable(l.environment),
        customer_id: printable(l.customerId),
        record: JSON.stringify(l.record),
        reason: l.reason,
        detail: l.detail === null ? null : printable(l.detail),
      })),
    )
    .onConflict((oc) => oc.columns(['stream', 'entry_id', 'position']).doNothing())
    .returning(['stream', 'entry_id', 'position'])
    .execute();
  const fresh = new Set(written.map((w) => `${w.stream}\u0001${w.entry_id}\u0001${w.position}`));
  return letters.filter((l) => fresh.has(`${l.stream}\u0001${l.entryId}\u0001${l.position}`));
}

export interface StoredDeadLetter {
  id: string;
  stream: string;
  entryId: string;
  position: number;
  environment: string;
  customerId: string;
  record: string;
  reason: string;
  detail: string | null;
  createdAt: Date;
}

/** The dead letters, oldest first (of one environment, if given). */
export async function listDeadLetters(
  db: Db,
  options: { environment?: string; limit?: number } = {},
): Promise<StoredDeadLetter[]> {
  let query = db
    .selectFrom('usage_dead_letters')
    .selectAll()
    .orderBy('id')
    .limit(options.limit ?? 1000);
  if (options.environment !== undefined) query = query.where('environment', '=', options.environment);
  return (await query.execute()).map(fromRow);
}

export async function findDeadLetter(db: Db, id: string): Promise<StoredDeadLetter | null> {
  if (!/^\d{1,18}$/.test(id)) return null;
  const row = await db
    .selectFrom('usage_dead_letters')
    .selectAll()
    .where('id', '=', Number(id))
    .executeTakeFirst();
  return row ? fromRow(row) : null;
}

/** Removes one; answers whether it was there. */
export async function deleteDeadLetter(db: Db, id: string): Promise<boolean> {
  if (!/^\d{1,18}$/.test(id)) return false;
  const result = await db.deleteFrom('usage_dead_letters').where('id', '=', Number(id)).executeTakeFirst();
  return Number(result.numDeletedRows) > 0;
}

function fromRow(row: {
  id: number;
  stream: string;
  entry_id: string;
  position: number;
  environment: string;
  customer_id: string;
  record: string;
  reason: string;
  detail: string | null;
  created_at: Date;
}): StoredDeadLetter {
  return {
    id: String(row.id),
    stream: row.stream,
    entryId: row.entry_id,
    position: row.position,
    environment: row.environment,
    customerId: row.customer_id,
    record: JSON.parse(row.record) as string,
    reason: row.reason,
    detail: row.detail,
    createdAt: row.created_at,
  };
}
