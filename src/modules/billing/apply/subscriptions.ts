/**
 * Makes Tessera's subscriptions match one Stripe subscription snapshot, inside the caller's
 * transaction (which holds the customer lock): one Tessera subscription per item, created, updated
 * or ended; an unmapped price is recorded (audit + outbox `stripe.price_unmapped`), never dropped.
 */
import {
  type DesiredSubscription,
  desiredSubscriptions,
  type InvoicePayment,
  type PlanRef,
  type StripeItemSnapshot,
  type StripeSubscriptionSnapshot,
} from '../../../domain/stripe-subscription.ts';
import type { Subscription } from '../../../domain/types.ts';
import type { TxCtx } from '../../../platform/context.ts';
import { newId } from '../../../platform/ids.ts';
import { findPlanByStripeReference, loadPlanVersion } from '../../catalog/repo.ts';
import { recordSubscriptionChange } from '../../subscriptions/changes.ts';
import {
  insertSubscription,
  loadStoredLiveSubscriptions,
  lockSubscription,
  saveSubscription,
  toSubscription,
} from '../../subscriptions/repo.ts';
import { sameStoredState } from '../../subscriptions/resource.ts';

async function resolvePlans(t: TxCtx, items: StripeItemSnapshot[]): Promise<Map<string, PlanRef | null>> {
  const plans = new Map<string, PlanRef | null>();
  for (const item of items) {
    const found =
      (await findPlanByStripeReference(t.tx, t.environment, { priceId: item.priceId })) ??
      (item.lookupKey
        ? await findPlanByStripeReference(t.tx, t.environment, { lookupKey: item.lookupKey })
        : null);
    const version = found ? await loadPlanVersion(t.tx, t.environment, found.planKey, found.version) : null;
    plans.set(
      item.id,
      version ? { planKey: version.planKey, planVersion: version.version, addon: version.addon } : null,
    );
  }
  return plans;
}

const ENDED = new Set(['canceled', 'expired']);

function actionFor(before: Subscription, after: Subscription): string {
  if (ENDED.has(after.status) && !ENDED.has(before.status)) return 'subscription.canceled';
  if (after.planKey !== before.planKey) return 'subscription.changed';
  if (after.status === 'past_due' && before.status !== 'past_due') return 'subscription.payment_failed';
  if (before.status === 'past_due' && after.status === 'active') return 'subscription.payment_recovered';
  if (after.status === 'paused' && before.status !== 'paused') return 'subscription.paused';
  if (before.status === 'paused' && after.status !== 'paused') return 'subscription.resumed';
  if (after.cancelAtPeriodEnd && !before.cancelAtPeriodEnd) return 'subscription.cancel_scheduled';
  if (!after.cancelAtPeriodEnd && before.cancelAtPeriodEnd) return 'subscription.uncanceled';
  if (after.quantity !== before.quantity) return 'subscription.quantity_changed';
  return 'subscription.updated';
}

export interface SnapshotResult {
  changed: number;
  unmapped: string[];
}

export interface ApplyOptions {
  /**
   * Reconciliation: a Tessera subscription ended in Tessera while Stripe's item is live is replaced
   * by a new one (Stripe leads). Events never do this: a late event must not undo an ending.
   */
  replaceEnded?: boolean;
}

export async function applySnapshot(
  t: TxCtx,
  customerId: string,
  snapshot: StripeSubscriptionSnapshot,
  snapshotCreated: number,
  invoices: InvoicePayment[],
  /** The snapshot applied before: an unmapped item it already carried was reported then. */
  previous: StripeSubscriptionSnapshot | null,
  options: ApplyOptions = {},
): Promise<SnapshotResult> {
  const plans = await resolvePlans(t, snapshot.items);
  const desired = desiredSubscriptions(
    snapshot,
    snapshotCreated,
    invoices,
    (item) => plans.get(item.id) ?? null,
  );
  const result: SnapshotResult = { changed: 0, unmapped: [] };
  for (const item of [...desired.unmapped, ...desired.extraBase]) {
    const reason = desired.unmapped.includes(item) ? 'no plan lists this price' : 'a second base plan';
    result.unmapped.push(`${item.id} (${item.priceId}): ${reason}`);
    if (previous?.items.some((p) => p.id === item.id && p.priceId === item.priceId)) continue;
    const payload = {
      stripe_subscription_id: snapshot.id,
      stripe_item_id: item.id,
      price_id: item.priceId,
      lookup_key: item.lookupKey,
      reason,
    };
    t.audit({
      action: 'stripe.price_unmapped',
      target: { type: 'stripe_subscription', id: snapshot.id },
      customerId,
      after: payload,
    });
    t.emit({ topic: 'stripe.price_unmapped', customerId, payload });
  }
  const links = await t.tx
    .selectFrom('stripe_subscription_links')
    .selectAll()
    .where('environment', '=', t.environment)
    .where('stripe_subscription_id', '=', snapshot.id)
    .orderBy('slot')
    .execute();
  const bySlot = new Map(links.map((l) => [l.slot, l.subscription_id]));
  for (const want of desired.subscriptions) {
    const linked = bySlot.get(want.slot);
    bySlot.delete(want.slot);
    if (await applyOne(t, customerId, snapshot.id, want, linked, options)) result.changed++;
  }
  // Items no longer on the Stripe subscription end now.
  for (const [, subscriptionId] of bySlot) {
    const row = await lockSubscription(t.tx, t.environment, subscriptionId);
    if (!row || ENDED.has(row.status)) continue;
    if (desired.subscriptions.length === 0 && !ENDED.has(snapshot.status)) continue; // incomplete: left as it is
    const before = toSubscription(row);
    const after: Subscription = { ...before, status: 'canceled', endedAt: new Date(snapshotCreated * 1000) };
    await saveSubscription(t.tx, t.environment, after, t.now);
    recordSubscriptionChange(t, 'subscription.canceled', before, after, {
      source: 'stripe',
      reason: 'item_removed',
    });
    result.changed++;
  }
  return result;
}

async function applyOne(
  t: TxCtx,
  customerId: string,
  stripeSubscriptionId: string,
  want: DesiredSubscription,
  linkedId: string | undefined,
  options: ApplyOptions,
): Promise<boolean> {
  let row = linkedId ? await lockSubscription(t.tx, t.environment, linkedId) : undefined;
  if (row && options.replaceEnded && ENDED.has(row.status) && !ENDED.has(want.state.status)) row = undefined;
  if (!row && want.slot === 'base' && !ENDED.has(want.state.status)) {
    // A live base plan made in Tessera before Stripe knew of it is taken over, not duplicated.
    const live = await loadStoredLiveSubscriptions(t.tx, t.environment, customerId);
    const base = live.find((s) => !s.addon);
    if (base) {
      row = await lockSubscription(t.tx, t.environment, base.id);
      const other = row?.stripe_subscription_id;
      if (other && other !== stripeSubscriptionId) {
        // Usually the other subscription's cancellation is still on its way: a retry will find it ended.
        throw new Error(
          `customer ${customerId} still has a live base plan from Stripe subscription ${other}; ${stripeSubscriptionId} waits for it to end`,
        );
      }
      if (row) await link(t, stripeSubscriptionId, want, row.id);
    }
  }
  if (!row) {
    const created: Subscription = { ...want.state, id: newId('sub', t.now.getTime()), customerId };
    await insertSubscription(t.tx, t.environment, created, t.now);
    await link(t, stripeSubscriptionId, want, created.id);
    const linked = { ...created, stripe: { subscriptionId: stripeSubscriptionId, itemId: want.itemId } };
    recordSubscriptionChange(t, 'subscription.created', null, linked, { source: 'stripe' });
    return true;
  }
  const before = toSubscription(row);
  // Stripe never brings a canceled subscription back; neither does Tessera.
  if (ENDED.has(before.status)) return false;
  // The base plan's item can change (Stripe swaps items); the link follows it.
  if (before.stripe?.subscriptionId !== stripeSubscriptionId || before.stripe.itemId !== want.itemId) {
    await linkItem(t, stripeSubscriptionId, want.itemId, row.id);
  }
  const samePlan = before.planKey === want.state.planKey;
  const after: Subscription = {
    ...before,
    ...want.state,
    planVersion: samePlan ? before.planVersion : want.state.planVersion,
  };
  if (sameStoredState(before, after)) return false;
  await saveSubscription(t.tx, t.environment, after, t.now);
  recordSubscriptionChange(t, actionFor(before, after), before, after, { source: 'stripe' });
  return true;
}

/**
 * Two link stores, written together: stripe_subscription_links maps a Stripe subscription's slot
 * (`base`, or an add-on's item id) to its Tessera subscription, so the base plan keeps its Tessera
 * subscription when Stripe swaps its item, and its primary key settles concurrent events; the
 * subscription's own `stripe_subscription_id` and `stripe_item_id` are what a Tessera-led change
 * pushes to and what the API shows.
 */
async function link(
  t: TxCtx,
  stripeSubscriptionId: string,
  want: DesiredSubscription,
  subscriptionId: string,
): Promise<void> {
  await t.tx
    .insertInto('stripe_subscription_links')
    .values({
      environment: t.environment,
      stripe_subscription_id: stripeSubscriptionId,
      slot: want.slot,
      subscription_id: subscriptionId,
      created_at: t.now,
    })
    .onConflict((oc) =>
      oc
        .columns(['environment', 'stripe_subscription_id', 'slot'])
        .doUpdateSet({ subscription_id: subscriptionId }),
    )
    .execute();
  await linkItem(t, stripeSubscriptionId, want.itemId, subscriptionId);
}

async function linkItem(
  t: TxCtx,
  stripeSubscriptionId: string,
  itemId: string,
  subscriptionId: string,
): Promise<void> {
  await t.tx
    .updateTable('subscriptions')
    .set({ stripe_subscription_id: stripeSubscriptionId, stripe_item_id: itemId })
    .where('environment', '=', t.environment)
    .where('id', '=', subscriptionId)
    .execute();
}
