/**
 * A Stripe customer's Tessera customer: the one linked by `stripe_customer_id`, else the one named
 * by the Stripe object's `metadata.tessera_customer_id` (then linked), else a new customer whose
 * `customer_id` is the Stripe customer id, linked.
 */
import type { TxCtx } from '../../../platform/context.ts';
import { findCustomerByStripeId, getCustomerRow } from '../../customers/repo.ts';
import { upsertCustomer } from '../../customers/service.ts';

export interface CustomerHints {
  tesseraCustomerId?: string | null;
  name?: string | null;
  email?: string | null;
}

export async function resolveCustomer(
  t: TxCtx,
  stripeCustomerId: string,
  hints: CustomerHints = {},
): Promise<string> {
  const linked = await findCustomerByStripeId(t.tx, t.environment, stripeCustomerId);
  if (linked) return linked.customer_id;
  const named = hints.tesseraCustomerId
    ? await getCustomerRow(t.tx, t.environment, hints.tesseraCustomerId)
    : null;
  if (named && named.stripe_customer_id === null) {
    await upsertCustomer(t, named.customer_id, { stripe_customer_id: stripeCustomerId });
    return named.customer_id;
  }
  await upsertCustomer(t, stripeCustomerId, {
    stripe_customer_id: stripeCustomerId,
    ...(hints.name ? { name: hints.name } : {}),
    ...(hints.email ? { email: hints.email } : {}),
  });
  return stripeCustomerId;
}
