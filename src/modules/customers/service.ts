/**
 * Customer verbs. A customer is keyed by the vendor's own id and upserted with PUT; deleting one
 * sets `deleted_at` and keeps the row, so history (audit, usage, subscriptions) still points at it
 * and a later PUT brings it back.
 */
import { type Ctx, reader, requireScope, type TxCtx, withTransaction } from '../../platform/context.ts';
import { Conflict, NotFound } from '../../platform/errors.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import { type CustomerRow, getCustomerRow, lockCustomerRow } from './repo.ts';
import type { CustomerResource, PutCustomerInput } from './schema.ts';

type Attributes = Record<string, string | number | boolean>;

/**
 * Run inside the delete's transaction, in order, after the row is marked deleted. Other slices
 * provide them (subscriptions: end the customer's subscriptions) instead of customers importing
 * them; src/runtime.ts lists them in `deps.services.customerDeletionHooks`.
 */
export type CustomerDeletionHook = (t: TxCtx, customerId: string) => Promise<void>;

/**
 * `bumped`: the transaction touched the customer, so its version grows by one at commit
 * (withTransaction does it after this function's work); the answer shows the committed version.
 */
export function toCustomerResource(row: CustomerRow, bumped = false): CustomerResource {
  return {
    customer_id: row.customer_id,
    name: row.name,
    email: row.email,
    attributes: row.attributes,
    stripe_customer_id: row.stripe_customer_id,
    version: row.version + (bumped ? 1 : 0),
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    deleted_at: row.deleted_at?.toISOString() ?? null,
  };
}

function sameAttributes(a: Attributes, b: Attributes): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && a[k] === b[k]);
}

function stripeTaken(stripeId: string, holder?: string): Conflict {
  return new Conflict(
    'stripe_customer_taken',
    `Stripe customer '${stripeId}' is already linked to ${holder ? `customer '${holder}'` : 'another customer'}`,
  );
}

function isStripeUniqueViolation(err: unknown): boolean {
  const e = err as { code?: unknown; constraint?: unknown } | null;
  return e?.code === '23505' && e.constraint === 'customers_stripe';
}

async function assertStripeFree(t: TxCtx, customerId: string, stripeId: string): Promise<void> {
  const holder = await t.tx
    .selectFrom('customers')
    .select('customer_id')
    .where('environment', '=', t.environment)
    .where('stripe_customer_id', '=', stripeId)
    .where('customer_id', '<>', customerId)
    .executeTakeFirst();
  if (holder) throw stripeTaken(stripeId, holder.customer_id);
}

export interface UpsertResult {
  created: boolean;
  customer: CustomerResource;
}

/**
 * Creates, updates or restores (after a delete) a customer. Omitted fields keep their value on an
 * update and start empty on a create or restore; `attributes` replaces the whole map. The insert
 * tries first (ON CONFLICT DO NOTHING), so concurrent first PUTs make one row and the rest update it
 * under its row lock.
 */
export async function upsertCustomer(
  ctx: Ctx,
  customerId: string,
  input: PutCustomerInput,
): Promise<UpsertResult> {
  requireScope(ctx, 'admin');
  try {
    return await withTransaction(ctx, (t) => upsertInTransaction(t, customerId, input));
  } catch (err) {
    // Two customers claiming one Stripe id at the same instant: the unique index decides.
    if (isStripeUniqueViolation(err)) throw stripeTaken(input.stripe_customer_id ?? '');
    throw err;
  }
}

async function upsertInTransaction(
  t: TxCtx,
  customerId: string,
  input: PutCustomerInput,
): Promise<UpsertResult> {
  if (input.stripe_customer_id) await assertStripeFree(t, customerId, input.stripe_customer_id);
  const fresh = {
    name: input.name ?? null,
    email: input.email ?? null,
    attributes: JSON.stringify(input.attributes ?? {}),
    stripe_customer_id: input.stripe_customer_id ?? null,
  };
  const inserted = await t.tx
    .insertInto('customers')
    // version 0: touching the new customer makes it 1 at commit, like every later change.
    .values({
      environment: t.environment,
      customer_id: customerId,
      ...fresh,
      version: 0,
      created_at: t.now,
      updated_at: t.now,
    })
    .onConflict((oc) => oc.columns(['environment', 'customer_id']).doNothing())
    .returningAll()
    .executeTakeFirst();
  const audit = (action: string, before: CustomerRow | null, after: CustomerResource) =>
    t.audit({
      action,
      target: { type: 'customer', id: customerId },
      customerId,
      before: before ? toCustomerResource(before) : undefined,
      after,
    });
  if (inserted) {
    t.touchCustomer(customerId);
    const customer = toCustomerResource(inserted, true);
    audit('customer.created', null, customer);
    return { created: true, customer };
  }

  const before = await lockCustomerRow(t.tx, t.environment, customerId);
  if (!before) throw new Error(`customer ${customerId} vanished between insert and lock`);
  const restoring = before.deleted_at !== null;
  const attributes = input.attributes ?? (restoring ? {} : before.attributes);
  const attributesChanged = !sameAttributes(attributes, before.attributes);
  const next = restoring
    ? { ...fresh, deleted_at: null }
    : {
        ...(input.name !== undefined && input.name !== before.name ? { name: input.name } : {}),
        ...(input.email !== undefined && input.email !== before.email ? { email: input.email } : {}),
        ...(attributesChanged ? { attributes: JSON.stringify(attributes) } : {}),
        ...(input.stripe_customer_id !== undefined && input.stripe_customer_id !== before.stripe_customer_id
          ? { stripe_customer_id: input.stripe_customer_id }
          : {}),
      };
  if (Object.keys(next).length === 0) return { created: false, customer: toCustomerResource(before) };

  const row = await t.tx
    .updateTable('customers')
    .set({ ...next, updated_at: t.now })
    .where('environment', '=', t.environment)
    .where('customer_id', '=', customerId)
    .returningAll()
    .executeTakeFirstOrThrow();
  // A restored customer exists again, so what it holds changed even if its attributes did not.
  const bumped = restoring || attributesChanged;
  if (bumped) t.touchCustomer(customerId);
  const customer = toCustomerResource(row, bumped);
  audit(restoring ? 'customer.created' : 'customer.updated', before, customer);
  return { created: restoring, customer };
}

export async function getCustomer(ctx: Ctx, customerId: string): Promise<CustomerResource> {
  requireScope(ctx, 'admin');
  const row = await getCustomerRow(reader(ctx), ctx.environment, customerId);
  if (!row) throw new NotFound('customer', customerId);
  return toCustomerResource(row);
}

export async function listCustomers(
  ctx: Ctx,
  query: {
    limit: number;
    cursor?: string | undefined;
    email?: string | undefined;
    stripe_customer_id?: string | undefined;
  },
) {
  requireScope(ctx, 'admin');
  const after = decodeCursor<{ id: string }>(query.cursor, { id: 'string' });
  let q = reader(ctx)
    .selectFrom('customers')
    .selectAll()
    .where('environment', '=', ctx.environment)
    .where('deleted_at', 'is', null);
  if (after) q = q.where('customer_id', '>', after.id);
  if (query.email !== undefined) {
    const email = query.email.toLowerCase();
    q = q.where((eb) => eb(eb.fn('lower', ['email']), '=', email));
  }
  if (query.stripe_customer_id !== undefined)
    q = q.where('stripe_customer_id', '=', query.stripe_customer_id);
  const rows = await q
    .orderBy('customer_id')
    .limit(query.limit + 1)
    .execute();
  return page(
    rows,
    query.limit,
    (r) => toCustomerResource(r),
    (r) => ({ id: r.customer_id }),
  );
}

/** Marks the customer deleted, runs the deletion hooks (ending its subscriptions), keeps history. */
export async function deleteCustomer(ctx: Ctx, customerId: string): Promise<CustomerResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await lockCustomerRow(t.tx, t.environment, customerId);
    if (!before || before.deleted_at) throw new NotFound('customer', customerId);
    const row = await t.tx
      .updateTable('customers')
      .set({ deleted_at: t.now, updated_at: t.now })
      .where('environment', '=', t.environment)
      .where('customer_id', '=', customerId)
      .returningAll()
      .executeTakeFirstOrThrow();
    for (const hook of ctx.deps.services.customerDeletionHooks) await hook(t, customerId);
    t.touchCustomer(customerId);
    const customer = toCustomerResource(row, true);
    t.audit({
      action: 'customer.deleted',
      target: { type: 'customer', id: customerId },
      customerId,
      before: toCustomerResource(before),
      after: customer,
    });
    return customer;
  });
}
