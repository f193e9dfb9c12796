/**
 * Checkout when Tessera leads: a Stripe Checkout Session in subscription mode for the plan's
 * Stripe price, for the customer's Stripe customer (created in Stripe and linked the first time).
 * Tessera's customer id rides along in `client_reference_id` and in the metadata of the session
 * and of the subscription it creates, so Stripe's events find their way back.
 */
import type Stripe from 'stripe';
import { type Ctx, reader, requireScope, withTransaction } from '../../platform/context.ts';
import { Conflict, NotFound } from '../../platform/errors.ts';
import { getCustomerRow, lockCustomerRow } from '../customers/repo.ts';
import { callStripe, connectedClient, planPrice } from './stripe-calls.ts';

export interface CheckoutInput {
  plan: string;
  success_url: string;
  cancel_url: string;
  quantity?: number | undefined;
}

export interface CheckoutAnswer {
  url: string;
  session_id: string;
}

/**
 * The customer's Stripe customer id: the linked one, else one created in Stripe (idempotency key
 * from environment and customer, so a retry or a concurrent checkout gets the same one) and linked
 * in Tessera, audited.
 */
async function stripeCustomerFor(ctx: Ctx, client: Stripe, customerId: string): Promise<string> {
  const row = await getCustomerRow(reader(ctx), ctx.environment, customerId);
  if (!row) throw new NotFound('customer', customerId);
  if (row.stripe_customer_id) return row.stripe_customer_id;
  const created = await callStripe(() =>
    client.customers.create(
      {
        ...(row.name ? { name: row.name } : {}),
        metadata: { tessera_customer_id: customerId, tessera_environment: ctx.environment },
      },
      { idempotencyKey: `tessera:customer:${ctx.environment}:${customerId}` },
    ),
  );
  return withTransaction(ctx, async (t) => {
    const locked = await lockCustomerRow(t.tx, t.environment, customerId);
    if (!locked || locked.deleted_at) throw new NotFound('customer', customerId);
    // Linked meanwhile (another checkout, a webhook): keep that link.
    if (locked.stripe_customer_id) return locked.stripe_customer_id;
    const holder = await t.tx
      .selectFrom('customers')
      .select('customer_id')
      .where('environment', '=', t.environment)
      .where('stripe_customer_id', '=', created.id)
      .executeTakeFirst();
    if (holder) {
      throw new Conflict(
        'stripe_customer_taken',
        `Stripe customer '${created.id}' is already linked to customer '${holder.customer_id}'`,
      );
    }
    await t.tx
      .updateTable('customers')
      .set({ stripe_customer_id: created.id, updated_at: t.now })
      .where('environment', '=', t.environment)
      .where('customer_id', '=', customerId)
      .execute();
    t.audit({
      action: 'customer.stripe_linked',
      target: { type: 'customer', id: customerId },
      before: { stripe_customer_id: null },
      after: { stripe_customer_id: created.id },
    });
    return created.id;
  });
}

export async function createCheckout(
  ctx: Ctx,
  customerId: string,
  input: CheckoutInput,
): Promise<CheckoutAnswer> {
  requireScope(ctx, 'admin');
  const db = reader(ctx);
  if (!(await getCustomerRow(db, ctx.environment, customerId))) throw new NotFound('customer', customerId);
  const { client } = await connectedClient(ctx, db);
  const price = await planPrice(db, client, ctx.environment, input.plan);
  const stripeCustomer = await stripeCustomerFor(ctx, client, customerId);
  const metadata = { tessera_customer_id: customerId };
  const session = await callStripe(() =>
    client.checkout.sessions.create({
      mode: 'subscription',
      customer: stripeCustomer,
      line_items: [{ price, quantity: input.quantity ?? 1 }],
      success_url: input.success_url,
      cancel_url: input.cancel_url,
      client_reference_id: customerId,
      metadata,
      subscription_data: { metadata },
    }),
  );
  if (!session.url) throw new Error(`Stripe answered checkout session ${session.id} without a url`);
  return { url: session.url, session_id: session.id };
}
