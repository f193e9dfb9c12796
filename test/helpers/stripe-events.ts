/**
 * Stripe objects and events shaped like the pinned API version's (billing periods on the
 * subscription items; an invoice names its subscription under `parent.subscription_details`), for
 * tests that hand events to `applyStripeEvent` or serve them from the fake Stripe server.
 */
import Stripe from 'stripe';

export interface ItemSpec {
  id: string;
  price: string;
  lookupKey?: string | null;
  quantity?: number;
}

export interface SubscriptionSpec {
  id: string;
  customer: string;
  status: Stripe.Subscription.Status;
  items: ItemSpec[];
  /** The current period, seconds. */
  period: [number, number];
  startDate: number;
  trialEnd?: number | null;
  cancelAtPeriodEnd?: boolean;
  cancelAt?: number | null;
  canceledAt?: number | null;
  endedAt?: number | null;
  metadata?: Record<string, string>;
}

function price(id: string, lookupKey: string | null): Stripe.Price {
  return {
    id,
    object: 'price',
    active: true,
    billing_scheme: 'per_unit',
    created: 1_700_000_000,
    currency: 'usd',
    livemode: false,
    lookup_key: lookupKey,
    metadata: {},
    nickname: null,
    product: `prod_${id}`,
    recurring: {
      interval: 'month',
      interval_count: 1,
      meter: null,
      usage_type: 'licensed',
      trial_period_days: null,
    },
    tax_behavior: 'unspecified',
    tiers_mode: null,
    transform_quantity: null,
    type: 'recurring',
    unit_amount: 2000,
    unit_amount_decimal: '2000',
  } as unknown as Stripe.Price;
}

export function stripeSubscription(spec: SubscriptionSpec): Stripe.Subscription {
  return {
    id: spec.id,
    object: 'subscription',
    application: null,
    automatic_tax: { enabled: false, liability: null, disabled_reason: null },
    billing_cycle_anchor: spec.period[0],
    billing_mode: { type: 'flexible' },
    cancel_at: spec.cancelAt ?? null,
    cancel_at_period_end: spec.cancelAtPeriodEnd ?? false,
    canceled_at: spec.canceledAt ?? null,
    collection_method: 'charge_automatically',
    created: spec.startDate,
    currency: 'usd',
    customer: spec.customer,
    default_payment_method: null,
    description: null,
    discounts: [],
    ended_at: spec.endedAt ?? null,
    items: {
      object: 'list',
      has_more: false,
      url: `/v1/subscription_items?subscription=${spec.id}`,
      data: spec.items.map((item) => ({
        id: item.id,
        object: 'subscription_item',
        created: spec.startDate,
        current_period_start: spec.period[0],
        current_period_end: spec.period[1],
        discounts: [],
        metadata: {},
        price: price(item.price, item.lookupKey ?? null),
        quantity: item.quantity ?? 1,
        subscription: spec.id,
        tax_rates: [],
      })),
    },
    latest_invoice: null,
    livemode: false,
    metadata: spec.metadata ?? {},
    pause_collection: null,
    start_date: spec.startDate,
    status: spec.status,
    trial_end: spec.trialEnd ?? null,
    trial_start: spec.trialEnd ? spec.startDate : null,
  } as unknown as Stripe.Subscription;
}

export function stripeInvoice(spec: {
  id: string;
  customer: string;
  subscription: string;
  status: 'open' | 'paid';
  created: number;
  paidAt?: number | null;
}): Stripe.Invoice {
  return {
    id: spec.id,
    object: 'invoice',
    amount_due: 2000,
    amount_paid: spec.status === 'paid' ? 2000 : 0,
    attempt_count: 1,
    billing_reason: 'subscription_cycle',
    created: spec.created,
    currency: 'usd',
    customer: spec.customer,
    livemode: false,
    parent: {
      type: 'subscription_details',
      quote_details: null,
      subscription_details: { metadata: {}, subscription: spec.subscription },
    },
    status: spec.status,
    status_transitions: {
      finalized_at: spec.created,
      marked_uncollectible_at: null,
      paid_at: spec.paidAt ?? null,
      voided_at: null,
    },
  } as unknown as Stripe.Invoice;
}

export function stripeCustomer(spec: {
  id: string;
  email?: string | null;
  name?: string | null;
  metadata?: Record<string, string>;
}): Stripe.Customer {
  return {
    id: spec.id,
    object: 'customer',
    created: 1_700_000_000,
    email: spec.email ?? null,
    livemode: false,
    metadata: spec.metadata ?? {},
    name: spec.name ?? null,
  } as unknown as Stripe.Customer;
}

export function checkoutSession(spec: {
  id: string;
  customer: string;
  subscription: string | Stripe.Subscription;
  clientReferenceId?: string | null;
}): Stripe.Checkout.Session {
  return {
    id: spec.id,
    object: 'checkout.session',
    client_reference_id: spec.clientReferenceId ?? null,
    customer: spec.customer,
    customer_details: { email: null, name: null },
    livemode: false,
    metadata: {},
    mode: 'subscription',
    payment_status: 'paid',
    status: 'complete',
    subscription: spec.subscription,
  } as unknown as Stripe.Checkout.Session;
}

let counter = 0;

/** An event around an object, as Stripe delivers it (`created` in seconds). */
export function stripeEvent(type: string, object: unknown, created: number, id?: string): Stripe.Event {
  return {
    id: id ?? `evt_${(++counter).toString().padStart(6, '0')}`,
    object: 'event',
    api_version: Stripe.API_VERSION,
    created,
    data: { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  } as unknown as Stripe.Event;
}

/**
 * One Stripe-driven lifecycle of Stripe subscription `sub_<n>` (customer `cus_<n>`) around `s0`
 * (seconds), in order, as [label, event]: created on `price_basic`, upgraded to `price_pro`, a
 * payment failing, past due, the invoice paid, recovered, cancel at period end, deleted; optionally
 * opened by a completed Checkout Session and with `invoice.payment_succeeded` after the payment.
 */
export function stripeLifecycle(
  n: string,
  s0: number,
  options: { checkout?: boolean; paymentSucceeded?: boolean } = {},
): Array<[string, Stripe.Event]> {
  const DAY = 86_400;
  const base = s0 - 3600;
  const period: [number, number] = [s0 - DAY, s0 + 29 * DAY];
  const sub = (over: Partial<Parameters<typeof stripeSubscription>[0]>) =>
    stripeSubscription({
      id: `sub_${n}`,
      customer: `cus_${n}`,
      status: 'active',
      items: [{ id: `si_${n}`, price: 'price_basic' }],
      period,
      startDate: period[0],
      ...over,
    });
  const pro = [{ id: `si_${n}`, price: 'price_pro', lookupKey: 'pro_monthly' }];
  const invoice = (status: 'open' | 'paid', created: number) =>
    stripeInvoice({
      id: `in_${n}`,
      customer: `cus_${n}`,
      subscription: `sub_${n}`,
      status,
      created,
      paidAt: status === 'paid' ? base + 400 : null,
    });
  const steps: Array<[string, Stripe.Event]> = [
    ['created', stripeEvent('customer.subscription.created', sub({}), base + 100)],
    ['upgraded', stripeEvent('customer.subscription.updated', sub({ items: pro }), base + 200)],
    ['payment failed', stripeEvent('invoice.payment_failed', invoice('open', base + 300), base + 300)],
    [
      'past due',
      stripeEvent('customer.subscription.updated', sub({ items: pro, status: 'past_due' }), base + 300),
    ],
    ['invoice paid', stripeEvent('invoice.paid', invoice('paid', base + 300), base + 400)],
    ['recovered', stripeEvent('customer.subscription.updated', sub({ items: pro }), base + 400)],
    [
      'cancel at period end',
      stripeEvent(
        'customer.subscription.updated',
        sub({ items: pro, cancelAtPeriodEnd: true, canceledAt: base + 500 }),
        base + 500,
      ),
    ],
    [
      'deleted',
      stripeEvent(
        'customer.subscription.deleted',
        sub({ items: pro, status: 'canceled', canceledAt: base + 500, endedAt: base + 600 }),
        base + 600,
      ),
    ],
  ];
  if (options.paymentSucceeded) {
    const paid = steps.findIndex(([label]) => label === 'invoice paid');
    steps.splice(paid + 1, 0, [
      'payment succeeded',
      stripeEvent('invoice.payment_succeeded', invoice('paid', base + 300), base + 400),
    ]);
  }
  if (options.checkout) {
    const checkout = checkoutSession({
      id: `cs_${n}`,
      customer: `cus_${n}`,
      subscription: `sub_${n}`,
      clientReferenceId: `c_${n}`,
    });
    steps.unshift(['checkout completed', stripeEvent('checkout.session.completed', checkout, base)]);
  }
  return steps;
}
