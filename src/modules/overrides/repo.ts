import type { Selectable } from 'kysely';
import type { CreditGrant, Override, OverrideEffect } from '../../domain/types.ts';
import type { DB, Executor, Tx } from '../../platform/db.ts';
import { NotFound } from '../../platform/errors.ts';
import { getCustomerRow, lockCustomerRow } from '../customers/repo.ts';
import type { CreditGrantsTable, OverridesTable } from './tables.ts';

export function toOverride(row: Selectable<OverridesTable>): Override {
  return {
    id: row.id,
    customerId: row.customer_id,
    feature: row.feature,
    effect: row.effect as unknown as OverrideEffect,
    condition: row.condition,
    startsAt: row.starts_at,
    expiresAt: row.expires_at,
    endedAt: row.ended_at,
    reason: row.reason,
  };
}

export function toGrant(row: Selectable<CreditGrantsTable>): CreditGrant {
  return {
    id: row.id,
    customerId: row.customer_id,
    feature: row.feature,
    amount: row.amount,
    priority: row.priority,
    effectiveAt: row.effective_at,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    voidedAt: row.voided_at,
    reason: row.reason,
  };
}

/**
 * Overrides that apply now or later, by customer (ended and expired ones are history and stay out
 * of snapshots).
 */
export async function loadLiveOverridesOf(
  db: Executor,
  environment: string,
  customerIds: readonly string[],
  now: Date,
): Promise<Map<string, Override[]>> {
  const rows = await db
    .selectFrom('overrides')
    .selectAll()
    .where('environment', '=', environment)
    .where('customer_id', 'in', customerIds)
    .where((eb) => eb.or([eb('ended_at', 'is', null), eb('ended_at', '>', now)]))
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .orderBy('created_at')
    .execute();
  return groupBy(rows, toOverride);
}

/** Grants not voided and not yet expired, by customer. */
export async function loadLiveGrantsOf(
  db: Executor,
  environment: string,
  customerIds: readonly string[],
  now: Date,
): Promise<Map<string, CreditGrant[]>> {
  const rows = await db
    .selectFrom('credit_grants')
    .selectAll()
    .where('environment', '=', environment)
    .where('customer_id', 'in', customerIds)
    .where('voided_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .orderBy('created_at')
    .execute();
  return groupBy(rows, toGrant);
}

function groupBy<R extends { customer_id: string }, T>(rows: R[], to: (row: R) => T): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const row of rows) {
    const list = out.get(row.customer_id);
    if (list) list.push(to(row));
    else out.set(row.customer_id, [to(row)]);
  }
  return out;
}

export type HeldTable = 'overrides' | 'credit_grants';

/** One page of a customer's overrides or grants, oldest first (ids sort by creation). */
export async function listCustomerRows<T extends HeldTable>(
  db: Executor,
  table: T,
  environment: string,
  customerId: string,
  afterId: string | undefined,
  limit: number,
) {
  // The two tables share the columns used here; Kysely cannot see that through the generic.
  let q = (db as Executor)
    .selectFrom(table as 'overrides')
    .selectAll()
    .where('environment', '=', environment)
    .where('customer_id', '=', customerId);
  if (afterId !== undefined) q = q.where('id', '>', afterId);
  return (await q.orderBy('id').limit(limit).execute()) as unknown as Selectable<DB[T]>[];
}

/** Locks one override or grant of the environment (inside the caller's transaction). */
export async function lockHeldRow<T extends HeldTable>(tx: Tx, table: T, environment: string, id: string) {
  const row = await tx
    .selectFrom(table as 'overrides')
    .selectAll()
    .where('environment', '=', environment)
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
  return row as unknown as Selectable<DB[T]> | undefined;
}

/** Locks a live customer, so concurrent changes to what it holds serialise; 404 when there is none. */
export async function lockLiveCustomer(tx: Tx, environment: string, customerId: string): Promise<void> {
  const row = await lockCustomerRow(tx, environment, customerId);
  if (!row || row.deleted_at) throw new NotFound('customer', customerId);
}

export async function requireLiveCustomer(
  db: Executor,
  environment: string,
  customerId: string,
): Promise<void> {
  if (!(await getCustomerRow(db, environment, customerId))) throw new NotFound('customer', customerId);
}
