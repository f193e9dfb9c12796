/** The per-object high-water marks: the newest event applied for each Stripe object, and its state. */
import { sql } from 'kysely';
import type { Executor, Tx } from '../../../platform/db.ts';

export type StripeObjectType = 'subscription' | 'invoice' | 'customer';

export interface StripeObjectMark<S> {
  created: number;
  eventId: string;
  hash: string;
  state: S;
}

export async function readMark<S>(
  db: Executor,
  environment: string,
  type: StripeObjectType,
  id: string,
  lock?: 'lock',
): Promise<StripeObjectMark<S> | null> {
  let q = db
    .selectFrom('stripe_objects')
    .selectAll()
    .where('environment', '=', environment)
    .where('object_type', '=', type)
    .where('object_id', '=', id);
  if (lock) q = q.forUpdate();
  const row = await q.executeTakeFirst();
  if (!row) return null;
  return {
    created: Number(row.last_event_created),
    eventId: row.last_event_id,
    hash: row.state_hash,
    state: row.state as S,
  };
}

export async function writeMark<S>(
  tx: Tx,
  environment: string,
  type: StripeObjectType,
  id: string,
  mark: StripeObjectMark<S>,
  now: Date,
): Promise<void> {
  const values = {
    last_event_created: mark.created,
    last_event_id: mark.eventId,
    state_hash: mark.hash,
    state: JSON.stringify(mark.state),
    updated_at: now,
  };
  await tx
    .insertInto('stripe_objects')
    .values({ environment, object_type: type, object_id: id, ...values })
    .onConflict((oc) => oc.columns(['environment', 'object_type', 'object_id']).doUpdateSet(values))
    .execute();
}

/** The invoices of one Stripe subscription that Tessera has seen. */
export async function readInvoices<S>(
  db: Executor,
  environment: string,
  subscriptionId: string,
): Promise<S[]> {
  const rows = await db
    .selectFrom('stripe_objects')
    .select('state')
    .where('environment', '=', environment)
    .where('object_type', '=', 'invoice')
    .where(sql<string>`state->>'subscription'`, '=', subscriptionId)
    .orderBy('object_id')
    .execute();
  return rows.map((r) => r.state as S);
}
