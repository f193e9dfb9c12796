/** Stripe's objects (of the pinned API version) reduced to what Tessera reads of them. */
import { createHash } from 'node:crypto';
import type Stripe from 'stripe';
import type { InvoicePayment, StripeSubscriptionSnapshot } from '../../../domain/stripe-subscription.ts';

const idOf = (value: string | { id: string } | null | undefined): string | null =>
  value == null ? null : typeof value === 'string' ? value : value.id;

export function toSubscriptionSnapshot(sub: Stripe.Subscription): StripeSubscriptionSnapshot {
  return {
    id: sub.id,
    customer: idOf(sub.customer) ?? '',
    status: sub.status,
    startDate: sub.start_date,
    billingCycleAnchor: sub.billing_cycle_anchor,
    trialEnd: sub.trial_end,
    cancelAtPeriodEnd: sub.cancel_at_period_end,
    cancelAt: sub.cancel_at,
    canceledAt: sub.canceled_at,
    endedAt: sub.ended_at,
    items: sub.items.data.map((item) => ({
      id: item.id,
      priceId: item.price.id,
      lookupKey: item.price.lookup_key,
      quantity: item.quantity ?? 1,
      periodStart: item.current_period_start,
      periodEnd: item.current_period_end,
    })),
  };
}

/** The Tessera customer a Stripe object names in its metadata, if any. */
export function tesseraCustomerIdOf(object: { metadata?: Stripe.Metadata | null }): string | null {
  const value = object.metadata?.tessera_customer_id;
  return typeof value === 'string' && value !== '' ? value : null;
}

/** In current API versions an invoice names its subscription under `parent.subscription_details`. */
export function invoiceSubscriptionId(invoice: Stripe.Invoice): string | null {
  return idOf(invoice.parent?.subscription_details?.subscription);
}

export function invoicePayment(event: Stripe.Event, invoice: Stripe.Invoice): InvoicePayment {
  const paid = event.type !== 'invoice.payment_failed';
  return {
    id: invoice.id ?? '',
    subscription: invoiceSubscriptionId(invoice) ?? '',
    status: paid ? 'paid' : 'failed',
    failedAt: paid ? null : event.created,
    paidAt: paid ? (invoice.status_transitions?.paid_at ?? event.created) : null,
  };
}

export function stateHash(state: unknown): string {
  return createHash('sha256').update(JSON.stringify(state)).digest('hex').slice(0, 32);
}
