import type { Selectable } from 'kysely';
import type { Executor, Tx } from '../../platform/db.ts';
import type { CustomersTable } from './tables.ts';

export type CustomerRow = Selectable<CustomersTable>;

/**
 * A customer's row for other slices. Deleted customers (a `deleted_at`) are left out unless asked
 * for, because to every caller but history they no longer exist.
 */
export async function getCustomerRow(
  db: Executor,
  environment: string,
  customerId: string,
  options: { includeDeleted?: boolean } = {},
): Promise<CustomerRow | null> {
  let q = db
    .selectFrom('customers')
    .selectAll()
    .where('environment', '=', environment)
    .where('customer_id', '=', customerId);
  if (!options.includeDeleted) q = q.where('deleted_at', 'is', null);
  return (await q.executeTakeFirst()) ?? null;
}

/** Live customers' rows of many ids at once (snapshot loads batched, entitlements/snapshot.ts). */
export async function getCustomerRows(
  db: Executor,
  environment: string,
  customerIds: readonly string[],
): Promise<CustomerRow[]> {
  return db
    .selectFrom('customers')
    .selectAll()
    .where('environment', '=', environment)
    .where('customer_id', 'in', customerIds)
    .where('deleted_at', 'is', null)
    .execute();
}

/** Locks the row (deleted or not) for the rest of the transaction: per-customer changes serialise on it. */
export async function lockCustomerRow(
  tx: Tx,
  environment: string,
  customerId: string,
): Promise<CustomerRow | null> {
  const row = await tx
    .selectFrom('customers')
    .selectAll()
    .where('environment', '=', environment)
    .where('customer_id', '=', customerId)
    .forUpdate()
    .executeTakeFirst();
  return row ?? null;
}

/** The customer linked to a Stripe customer, deleted ones included (Stripe may still send events). */
export async function findCustomerByStripeId(
  db: Executor,
  environment: string,
  stripeCustomerId: string,
): Promise<CustomerRow | null> {
  const row = await db
    .selectFrom('customers')
    .selectAll()
    .where('environment', '=', environment)
    .where('stripe_customer_id', '=', stripeCustomerId)
    .executeTakeFirst();
  return row ?? null;
}
