/**
 * Reconciliation's way into the apply path: a Stripe subscription as Stripe lists it now is applied
 * like an event that is newer than any event seen (so a late event of before cannot roll it back),
 * through the same snapshot code the events use. What changed on the linked Tessera subscriptions
 * is the drift: each item is audited as `stripe.drift_repaired`. A dry run does the same work in a
 * transaction that is rolled back, so it reports exactly what a real run would change.
 */
import type Stripe from 'stripe';
import {
  type InvoicePayment,
  isTerminalStripeStatus,
  type StripeSubscriptionSnapshot,
} from '../../../domain/stripe-subscription.ts';
import { type Ctx, type TxCtx, withTransaction } from '../../../platform/context.ts';
import { lockCustomerRow } from '../../customers/repo.ts';
import { recordSubscriptionChange } from '../../subscriptions/changes.ts';
import { lockSubscription, saveSubscription, toSubscription } from '../../subscriptions/repo.ts';
import type { DriftItem } from '../tables.ts';
import { resolveCustomer } from './customers.ts';
import { readInvoices, readMark, writeMark } from './objects.ts';
import { stateHash, tesseraCustomerIdOf, toSubscriptionSnapshot } from './snapshot.ts';
import { applySnapshot } from './subscriptions.ts';

export interface ReconcileRun {
  id: string;
  dryRun: boolean;
  /**
   * When the run began listing (seconds): what Stripe listed is at least this new. An event made
   * before it is older than the listing; one made at or after it may not be in it.
   */
  listedAfter: number;
}

class RolledBack extends Error {
  constructor(readonly items: DriftItem[]) {
    super('dry run: rolled back');
  }
}

/** The fields compared between Stripe and Tessera, per linked Tessera subscription. */
interface View {
  customer_id: string;
  plan: string;
  status: string;
  quantity: number;
  cancel_at_period_end: boolean;
  current_period_end: string;
}

async function linkedViews(t: TxCtx, stripeSubscriptionId: string): Promise<Map<string, View>> {
  const rows = await t.tx
    .selectFrom('subscriptions')
    .select([
      'id',
      'customer_id',
      'plan_key',
      'status',
      'quantity',
      'cancel_at_period_end',
      'current_period_end',
    ])
    .where('environment', '=', t.environment)
    .where((eb) =>
      eb.or([
        eb('stripe_subscription_id', '=', stripeSubscriptionId),
        eb(
          'id',
          'in',
          eb
            .selectFrom('stripe_subscription_links')
            .select('subscription_id')
            .where('environment', '=', t.environment)
            .where('stripe_subscription_id', '=', stripeSubscriptionId),
        ),
      ]),
    )
    .execute();
  return new Map(
    rows.map((r) => [
      r.id,
      {
        customer_id: r.customer_id,
        plan: r.plan_key,
        status: r.status,
        quantity: r.quantity,
        cancel_at_period_end: r.cancel_at_period_end,
        current_period_end: r.current_period_end.toISOString(),
      },
    ]),
  );
}

const FIELDS = ['status', 'plan', 'quantity', 'cancel_at_period_end', 'current_period_end'] as const;

function driftOf(
  stripeSubscriptionId: string,
  before: Map<string, View>,
  after: Map<string, View>,
  action: DriftItem['action'],
): DriftItem[] {
  const items: DriftItem[] = [];
  for (const [id, now] of after) {
    const was = before.get(id);
    const base = { stripe_subscription_id: stripeSubscriptionId, customer_id: now.customer_id };
    if (!was) {
      const stripe = { plan: now.plan, status: now.status };
      items.push({
        ...base,
        tessera_subscription_id: id,
        field: 'subscription',
        tessera: null,
        stripe,
        action,
      });
      continue;
    }
    for (const field of FIELDS) {
      if (was[field] === now[field]) continue;
      items.push({
        ...base,
        tessera_subscription_id: id,
        field,
        tessera: was[field],
        stripe: now[field],
        action,
      });
    }
  }
  return items;
}

function auditDrift(t: TxCtx, items: DriftItem[], run: ReconcileRun): void {
  for (const item of items) {
    t.audit({
      action: 'stripe.drift_repaired',
      target: { type: 'subscription', id: item.tessera_subscription_id ?? item.stripe_subscription_id ?? '' },
      customerId: item.customer_id,
      before: { [item.field]: item.tessera },
      after: { [item.field]: item.stripe, reconciliation_id: run.id },
    });
  }
}

/** Runs `fn` in one transaction; a dry run rolls it back and keeps only what it found. */
async function inRun(ctx: Ctx, run: ReconcileRun, fn: (t: TxCtx) => Promise<DriftItem[]>) {
  try {
    return await withTransaction(ctx, async (t) => {
      const items = await fn(t);
      if (run.dryRun) throw new RolledBack(items);
      return items;
    });
  } catch (err) {
    if (err instanceof RolledBack) return err.items;
    throw err;
  }
}

const reconcileCtx = (ctx: Ctx, run: ReconcileRun): Ctx => ({
  ...ctx,
  actor: { type: 'stripe', id: run.id, name: 'reconciliation' },
  scopes: new Set(['admin']),
});

async function known(t: TxCtx, stripeSubscriptionId: string): Promise<boolean> {
  const mark = await readMark(t.tx, t.environment, 'subscription', stripeSubscriptionId);
  return mark !== null || (await linkedViews(t, stripeSubscriptionId)).size > 0;
}

/** Makes Tessera match one Stripe subscription as Stripe shows it now; returns the drift found. */
export async function applyCurrentSubscription(
  ctx: Ctx,
  sub: Stripe.Subscription,
  run: ReconcileRun,
): Promise<DriftItem[]> {
  const snapshot = toSubscriptionSnapshot(sub);
  const action = run.dryRun ? 'would_repair' : 'repaired';
  return inRun(reconcileCtx(ctx, run), run, async (t) => {
    // An ended Stripe subscription Tessera never heard of grants nothing: no customer is made for it.
    if (isTerminalStripeStatus(snapshot.status) && !(await known(t, snapshot.id))) return [];
    const customerId = await resolveCustomer(t, snapshot.customer, {
      tesseraCustomerId: tesseraCustomerIdOf(sub),
    });
    const customer = await lockCustomerRow(t.tx, t.environment, customerId);
    if (customer?.deleted_at) return [];
    const stored = await readMark<StripeSubscriptionSnapshot>(
      t.tx,
      t.environment,
      'subscription',
      snapshot.id,
      'lock',
    );
    // An event made after the listing began was applied meanwhile: it may be newer than the listing.
    if (stored && stored.created > run.listedAfter) return [];
    const hash = stateHash(snapshot);
    // The listing is newer than every event made before it began: a late one is stale from here on.
    // An event of the same second is a tie, which the event path settles by fetching from Stripe.
    const created = run.listedAfter;
    await writeMark(
      t.tx,
      t.environment,
      'subscription',
      snapshot.id,
      { created, eventId: run.id, hash, state: snapshot },
      t.now,
    );
    // Unchanged since the last event: what is derived from the time of the state (when a pause
    // began, whether a later invoice failed) stays as that event left it.
    const stateTime = stored?.hash === hash ? stored.created : created;
    const before = await linkedViews(t, snapshot.id);
    const invoices = await readInvoices<InvoicePayment>(t.tx, t.environment, snapshot.id);
    const result = await applySnapshot(t, customerId, snapshot, stateTime, invoices, stored?.state ?? null, {
      replaceEnded: true,
    });
    const items = driftOf(snapshot.id, before, await linkedViews(t, snapshot.id), action);
    auditDrift(t, items, run);
    for (const unmapped of result.unmapped) {
      items.push({
        stripe_subscription_id: snapshot.id,
        customer_id: customerId,
        tessera_subscription_id: null,
        field: 'price',
        tessera: null,
        stripe: unmapped,
        action: 'reported',
      });
    }
    return items;
  });
}

/** Ends the live Tessera subscriptions linked to a Stripe subscription that Stripe no longer has. */
export async function endVanishedSubscription(
  ctx: Ctx,
  stripeSubscriptionId: string,
  run: ReconcileRun,
): Promise<DriftItem[]> {
  const action = run.dryRun ? 'would_repair' : 'repaired';
  return inRun(reconcileCtx(ctx, run), run, async (t) => {
    const before = await linkedViews(t, stripeSubscriptionId);
    for (const [id, view] of before) {
      if (view.status === 'canceled' || view.status === 'expired') continue;
      await lockCustomerRow(t.tx, t.environment, view.customer_id);
      const row = await lockSubscription(t.tx, t.environment, id);
      if (!row || row.status === 'canceled' || row.status === 'expired') continue;
      const was = toSubscription(row);
      const after = { ...was, status: 'canceled' as const, endedAt: t.now };
      await saveSubscription(t.tx, t.environment, after, t.now);
      recordSubscriptionChange(t, 'subscription.canceled', was, after, {
        source: 'stripe',
        reason: 'stripe_subscription_missing',
      });
    }
    const items = driftOf(stripeSubscriptionId, before, await linkedViews(t, stripeSubscriptionId), action);
    auditDrift(t, items, run);
    return items;
  });
}
