import Stripe from 'stripe';

/**
 * Stripe events shaped like the real ones of the pinned API version (`Stripe.API_VERSION`; billing
 * periods on the subscription items), and signatures made with the real package.
 */
let counter = 0;
export const eventId = () =>
  `evt_1Q${Date.now().toString(36)}${(counter++).toString(36).padStart(4, '0')}Tst`;

export function subscriptionEvent(options: {
  id?: string;
  type?: string;
  created: number;
  livemode?: boolean;
  metadata?: Record<string, string>;
}): Stripe.Event {
  const start = options.created - 86_400;
  const end = start + 30 * 86_400;
  const subscription = {
    id: 'sub_1QTesseraTest0001',
    object: 'subscription',
    application: null,
    billing_cycle_anchor: start,
    cancel_at: null,
    cancel_at_period_end: false,
    canceled_at: null,
    collection_method: 'charge_automatically',
    created: start,
    currency: 'usd',
    customer: 'cus_QTesseraTest01',
    default_payment_method: null,
    ended_at: null,
    items: {
      object: 'list',
      data: [
        {
          id: 'si_QTesseraTest01',
          object: 'subscription_item',
          created: start,
          current_period_start: start,
          current_period_end: end,
          metadata: {},
          price: {
            id: 'price_1QTesseraPro01',
            object: 'price',
            active: true,
            currency: 'usd',
            lookup_key: 'pro_monthly',
            product: 'prod_QTesseraPro',
            recurring: { interval: 'month', interval_count: 1, usage_type: 'licensed' },
            type: 'recurring',
            unit_amount: 4900,
          },
          quantity: 1,
          subscription: 'sub_1QTesseraTest0001',
        },
      ],
      has_more: false,
      total_count: 1,
      url: '/v1/subscription_items?subscription=sub_1QTesseraTest0001',
    },
    latest_invoice: 'in_1QTesseraTest01',
    livemode: options.livemode ?? false,
    metadata: options.metadata ?? {},
    start_date: start,
    status: 'active',
    trial_end: null,
    trial_start: null,
  };
  return {
    id: options.id ?? eventId(),
    object: 'event',
    api_version: Stripe.API_VERSION,
    created: options.created,
    data: { object: subscription, previous_attributes: { status: 'incomplete' } },
    livemode: options.livemode ?? false,
    pending_webhooks: 1,
    request: { id: 'req_QTesseraTest01', idempotency_key: null },
    type: options.type ?? 'customer.subscription.updated',
  } as unknown as Stripe.Event;
}

/** The `Stripe-Signature` header Stripe would send for `payload` at `timestamp` (seconds). */
export function signature(payload: string, secret: string, timestamp: number): string {
  return Stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp });
}
