/**
 * Applies one Stripe event to Tessera's customers and subscriptions, in any order: each Stripe
 * object keeps a high-water mark (stripe_objects) and an event older than what was applied is
 * skipped; subscription events carry the whole subscription and the newest snapshot wins; invoice
 * events and ties in `created` re-fetch the subscription when a secret key is set. The webhook
 * intake calls this from its job; a thrown error is retried, a PermanentStripeError is not.
 */
import type Stripe from 'stripe';
import {
  breakTie,
  compareSnapshots,
  type InvoicePayment,
  isTerminalStripeStatus,
  mergeInvoicePayment,
  type SnapshotMark,
  type StripeSubscriptionSnapshot,
} from '../../../domain/stripe-subscription.ts';
import { type Ctx, type TxCtx, withTransaction } from '../../../platform/context.ts';
import { lockCustomerRow } from '../../customers/repo.ts';
import { type StripeConnection, stripeClient } from '../settings.ts';
import { type CustomerHints, resolveCustomer } from './customers.ts';
import { readInvoices, readMark, type StripeObjectMark, writeMark } from './objects.ts';
import {
  invoicePayment,
  invoiceSubscriptionId,
  stateHash,
  tesseraCustomerIdOf,
  toSubscriptionSnapshot,
} from './snapshot.ts';
import { applySnapshot } from './subscriptions.ts';

export type ApplyOutcome = { outcome: 'applied' | 'ignored'; detail?: string };

/** An event that can never apply (retrying it will not help). */
export class PermanentStripeError extends Error {}

const SUBSCRIPTION_EVENTS = new Set<string>([
  'customer.subscription.created',
  'customer.subscription.updated',
  'customer.subscription.deleted',
  'customer.subscription.paused',
  'customer.subscription.resumed',
  'customer.subscription.trial_will_end',
]);
const INVOICE_EVENTS = new Set<string>([
  'invoice.paid',
  'invoice.payment_failed',
  'invoice.payment_succeeded',
]);

export async function applyStripeEvent(
  ctx: Ctx,
  event: Stripe.Event,
  connection: StripeConnection,
): Promise<ApplyOutcome> {
  const stripeCtx: Ctx = {
    ...ctx,
    environment: connection.environment,
    actor: { type: 'stripe', id: event.id, name: event.type },
    scopes: new Set(['admin']),
  };
  if (SUBSCRIPTION_EVENTS.has(event.type)) {
    const sub = event.data.object as Stripe.Subscription;
    if (sub?.object !== 'subscription')
      throw new PermanentStripeError(`${event.type} carries no subscription`);
    return applySubscriptionEvent(stripeCtx, event, toSubscriptionSnapshot(sub), connection, false, {
      tesseraCustomerId: tesseraCustomerIdOf(sub),
    });
  }
  if (INVOICE_EVENTS.has(event.type)) return applyInvoiceEvent(stripeCtx, event, connection);
  switch (event.type) {
    case 'customer.created':
    case 'customer.updated':
    case 'customer.deleted':
      return applyCustomerEvent(stripeCtx, event);
    case 'checkout.session.completed':
      return applyCheckout(stripeCtx, event, connection);
    default:
      return { outcome: 'ignored', detail: `${event.type} is not applied` };
  }
}

type SubscriptionMark = StripeObjectMark<StripeSubscriptionSnapshot>;

const markOf = (m: { created: number; hash: string; state: StripeSubscriptionSnapshot }): SnapshotMark => ({
  created: m.created,
  hash: m.hash,
  terminal: isTerminalStripeStatus(m.state.status),
});

async function fetchSnapshot(
  connection: StripeConnection,
  ctx: Ctx,
  id: string,
): Promise<StripeSubscriptionSnapshot> {
  if (!connection.secretKey) throw new Error('no secret key');
  const client = stripeClient(connection.secretKey, ctx.deps.config.stripeApiBase);
  try {
    return toSubscriptionSnapshot(await client.subscriptions.retrieve(id));
  } catch (err) {
    // Stripe keeps canceled subscriptions, so one it does not know never will be: retrying cannot help.
    const status = (err as { statusCode?: unknown } | null)?.statusCode;
    if (status === 404) throw new PermanentStripeError(`Stripe knows no subscription ${id}`);
    throw err;
  }
}

/**
 * A subscription snapshot against the subscription's high-water mark. `fetched`: the snapshot was
 * just read from Stripe, so it is current and wins a tie.
 */
async function applySubscriptionEvent(
  ctx: Ctx,
  event: Stripe.Event,
  incoming: StripeSubscriptionSnapshot,
  connection: StripeConnection,
  fetched: boolean,
  hints: CustomerHints = {},
): Promise<ApplyOutcome> {
  let snapshot = incoming;
  let isFetched = fetched;
  const known = await readMark<StripeSubscriptionSnapshot>(
    ctx.deps.db,
    ctx.environment,
    'subscription',
    snapshot.id,
  );
  const created = Math.max(event.created, isFetched ? (known?.created ?? 0) : 0);
  if (!isFetched && connection.secretKey && known) {
    const order = compareSnapshots(
      markOf({ created, hash: stateHash(snapshot), state: snapshot }),
      markOf(known),
    );
    if (order === 'tie') {
      snapshot = await fetchSnapshot(connection, ctx, snapshot.id);
      isFetched = true;
    }
  }
  return withTransaction(ctx, async (t) => {
    const customerId = await resolveCustomer(t, snapshot.customer, hints);
    const customer = await lockCustomerRow(t.tx, t.environment, customerId);
    if (customer?.deleted_at) {
      return { outcome: 'ignored', detail: `customer ${customerId} is deleted in Tessera` };
    }
    const stored = await readMark<StripeSubscriptionSnapshot>(
      t.tx,
      t.environment,
      'subscription',
      snapshot.id,
      'lock',
    );
    const mark: SubscriptionMark = { created, eventId: event.id, hash: stateHash(snapshot), state: snapshot };
    let order = compareSnapshots(markOf(mark), stored ? markOf(stored) : null);
    if (order === 'tie' && stored) order = isFetched ? 'newer' : breakTie(markOf(mark), markOf(stored));
    if (order === 'same') return { outcome: 'ignored', detail: 'duplicate: this state is already applied' };
    if (order === 'stale') {
      return {
        outcome: 'ignored',
        detail: `stale: ${snapshot.id} is already at an event of ${stored?.created}`,
      };
    }
    await writeMark(t.tx, t.environment, 'subscription', snapshot.id, mark, t.now);
    return applyToTessera(t, customerId, mark, stored?.state ?? null);
  });
}

async function applyToTessera(
  t: TxCtx,
  customerId: string,
  mark: SubscriptionMark,
  previous: StripeSubscriptionSnapshot | null,
): Promise<ApplyOutcome> {
  const invoices = await readInvoices<InvoicePayment>(t.tx, t.environment, mark.state.id);
  const result = await applySnapshot(t, customerId, mark.state, mark.created, invoices, previous);
  if (result.unmapped.length > 0) {
    return {
      outcome: 'ignored',
      detail: `unmapped price on ${mark.state.id}: ${result.unmapped.join('; ')}`,
    };
  }
  return { outcome: 'applied', detail: `${result.changed} subscription(s) changed` };
}

/**
 * An invoice's payment is merged into its own mark (paid is final), then the subscription is
 * re-fetched when a key is set, else recomputed from its stored snapshot and the invoices.
 */
async function applyInvoiceEvent(
  ctx: Ctx,
  event: Stripe.Event,
  connection: StripeConnection,
): Promise<ApplyOutcome> {
  const invoice = event.data.object as Stripe.Invoice;
  const subscriptionId = invoiceSubscriptionId(invoice);
  if (!invoice.id) throw new PermanentStripeError(`${event.type} carries no invoice id`);
  if (!subscriptionId) return { outcome: 'ignored', detail: 'the invoice belongs to no subscription' };
  const payment = invoicePayment(event, invoice);
  const merged = await withTransaction(ctx, async (t) => {
    const stored = await readMark<InvoicePayment>(t.tx, t.environment, 'invoice', payment.id, 'lock');
    const next = mergeInvoicePayment(stored?.state ?? null, payment);
    const hash = stateHash(next);
    if (stored?.hash === hash) return false;
    const created = Math.max(stored?.created ?? 0, event.created);
    await writeMark(
      t.tx,
      t.environment,
      'invoice',
      payment.id,
      { created, eventId: event.id, hash, state: next },
      t.now,
    );
    return true;
  });
  if (connection.secretKey) {
    const snapshot = await fetchSnapshot(connection, ctx, subscriptionId);
    return applySubscriptionEvent(ctx, event, snapshot, connection, true);
  }
  if (!merged) return { outcome: 'ignored', detail: 'duplicate: this payment is already applied' };
  return withTransaction(ctx, async (t) => {
    const stored = await readMark<StripeSubscriptionSnapshot>(
      t.tx,
      t.environment,
      'subscription',
      subscriptionId,
    );
    // The subscription's own event will apply the payment when it comes.
    if (!stored) return { outcome: 'applied', detail: 'payment recorded; the subscription is not known yet' };
    const customerId = await resolveCustomer(t, stored.state.customer);
    await lockCustomerRow(t.tx, t.environment, customerId);
    const locked = await readMark<StripeSubscriptionSnapshot>(
      t.tx,
      t.environment,
      'subscription',
      subscriptionId,
      'lock',
    );
    const current = locked ?? stored;
    return applyToTessera(t, customerId, current, current.state);
  });
}

async function applyCustomerEvent(ctx: Ctx, event: Stripe.Event): Promise<ApplyOutcome> {
  const customer = event.data.object as Stripe.Customer | Stripe.DeletedCustomer;
  if (customer.deleted) {
    // Stripe cancels the customer's subscriptions and says so in their own events; the link stays
    // so those events still find the customer.
    return {
      outcome: 'applied',
      detail: 'the Stripe customer was deleted; its subscriptions end through their events',
    };
  }
  return withTransaction(ctx, async (t) => {
    const stored = await readMark<unknown>(t.tx, t.environment, 'customer', customer.id, 'lock');
    if (stored && stored.created > event.created) return { outcome: 'ignored', detail: 'stale' };
    const customerId = await resolveCustomer(t, customer.id, {
      tesseraCustomerId: tesseraCustomerIdOf(customer),
      name: customer.name ?? null,
      email: customer.email ?? null,
    });
    const state = { name: customer.name ?? null, email: customer.email ?? null };
    await writeMark(
      t.tx,
      t.environment,
      'customer',
      customer.id,
      {
        created: event.created,
        eventId: event.id,
        hash: stateHash(state),
        state,
      },
      t.now,
    );
    return { outcome: 'applied', detail: `linked to customer ${customerId}` };
  });
}

/**
 * Checkout links the customer (`client_reference_id` or `metadata.tessera_customer_id` name the
 * Tessera customer) and applies the subscription: carried when expanded, re-fetched when a key is
 * set, else left to the subscription's own events.
 */
async function applyCheckout(
  ctx: Ctx,
  event: Stripe.Event,
  connection: StripeConnection,
): Promise<ApplyOutcome> {
  const session = event.data.object as Stripe.Checkout.Session;
  const stripeCustomerId =
    typeof session.customer === 'string' ? session.customer : (session.customer?.id ?? null);
  if (session.mode !== 'subscription' || !stripeCustomerId) {
    return { outcome: 'ignored', detail: 'not a subscription checkout' };
  }
  const hints: CustomerHints = {
    tesseraCustomerId: session.client_reference_id ?? tesseraCustomerIdOf(session),
    email: session.customer_details?.email ?? null,
    name: session.customer_details?.name ?? null,
  };
  const sub = session.subscription;
  if (sub && typeof sub !== 'string') {
    return applySubscriptionEvent(ctx, event, toSubscriptionSnapshot(sub), connection, false, hints);
  }
  if (sub && connection.secretKey) {
    return applySubscriptionEvent(
      ctx,
      event,
      await fetchSnapshot(connection, ctx, sub),
      connection,
      true,
      hints,
    );
  }
  const customerId = await withTransaction(ctx, (t) => resolveCustomer(t, stripeCustomerId, hints));
  return {
    outcome: 'applied',
    detail: `linked to customer ${customerId}; the subscription follows from its events`,
  };
}
