import type { Insertable, Selectable } from 'kysely';
import type { Subscription, SubscriptionStatus, TrialEnd } from '../../domain/types.ts';
import type { Executor, Tx } from '../../platform/db.ts';
import type { SubscriptionsTable } from './tables.ts';

export type SubscriptionRow = Selectable<SubscriptionsTable>;

/** Rows become domain objects at the repo's edge. */
export function toSubscription(row: SubscriptionRow): Subscription {
  return {
    id: row.id,
    customerId: row.customer_id,
    planKey: row.plan_key,
    planVersion: row.plan_version,
    addon: row.addon,
    status: row.status as SubscriptionStatus,
    quantity: row.quantity,
    startedAt: row.started_at,
    billingAnchor: row.billing_anchor,
    trialEndsAt: row.trial_ends_at,
    trialOnEnd: row.trial_on_end as TrialEnd | null,
    trialDowngradeTo: row.trial_downgrade_to,
    currentPeriodStart: row.current_period_start,
    currentPeriodEnd: row.current_period_end,
    cancelAtPeriodEnd: row.cancel_at_period_end,
    scheduledChange: row.scheduled_change
      ? {
          planKey: row.scheduled_change.plan_key,
          planVersion: row.scheduled_change.plan_version,
          at: new Date(row.scheduled_change.at),
        }
      : null,
    pastDueSince: row.past_due_since,
    pausedAt: row.paused_at,
    endedAt: row.ended_at,
    stripe: row.stripe_subscription_id
      ? { subscriptionId: row.stripe_subscription_id, itemId: row.stripe_item_id }
      : null,
  };
}

/** The stored columns of a domain subscription (everything but identity and bookkeeping). */
export function subscriptionColumns(sub: Subscription) {
  return {
    plan_key: sub.planKey,
    plan_version: sub.planVersion,
    addon: sub.addon,
    status: sub.status,
    quantity: sub.quantity,
    started_at: sub.startedAt,
    billing_anchor: sub.billingAnchor,
    trial_ends_at: sub.trialEndsAt,
    trial_on_end: sub.trialOnEnd,
    trial_downgrade_to: sub.trialDowngradeTo,
    current_period_start: sub.currentPeriodStart,
    current_period_end: sub.currentPeriodEnd,
    cancel_at_period_end: sub.cancelAtPeriodEnd,
    scheduled_change: sub.scheduledChange
      ? JSON.stringify({
          plan_key: sub.scheduledChange.planKey,
          plan_version: sub.scheduledChange.planVersion,
          at: sub.scheduledChange.at.toISOString(),
        })
      : null,
    past_due_since: sub.pastDueSince,
    paused_at: sub.pausedAt,
    ended_at: sub.endedAt,
  } satisfies Partial<Insertable<SubscriptionsTable>>;
}

export async function insertSubscription(
  tx: Tx,
  environment: string,
  sub: Subscription,
  now: Date,
): Promise<void> {
  await tx
    .insertInto('subscriptions')
    .values({
      id: sub.id,
      environment,
      customer_id: sub.customerId,
      ...subscriptionColumns(sub),
      created_at: now,
      updated_at: now,
    })
    .execute();
}

export async function saveSubscription(
  tx: Tx,
  environment: string,
  sub: Subscription,
  now: Date,
): Promise<void> {
  await tx
    .updateTable('subscriptions')
    .set({ ...subscriptionColumns(sub), updated_at: now })
    .where('environment', '=', environment)
    .where('id', '=', sub.id)
    .execute();
}

/**
 * Customers' subscriptions that can still matter to a decision, by customer: live ones, and the
 * most recent ended ones (an expired trial explains `trial_expired`); newest first, at most 100 each.
 */
export async function loadSubscriptionsOf(
  db: Executor,
  environment: string,
  customerIds: readonly string[],
): Promise<Map<string, Subscription[]>> {
  let q = db
    .selectFrom('subscriptions')
    .selectAll()
    .where('environment', '=', environment)
    .where('customer_id', 'in', customerIds)
    .orderBy('customer_id')
    .orderBy('started_at', 'desc')
    .orderBy('id', 'desc');
  // One customer's cap in SQL; for several, each is capped below.
  if (customerIds.length === 1) q = q.limit(100);
  const rows = await q.execute();
  const out = new Map<string, Subscription[]>();
  for (const row of rows) {
    const list = out.get(row.customer_id);
    if (!list) out.set(row.customer_id, [toSubscription(row)]);
    else if (list.length < 100) list.push(toSubscription(row));
  }
  return out;
}

/** Locks and returns one subscription (inside the caller's transaction). */
export async function lockSubscription(
  tx: Tx,
  environment: string,
  id: string,
): Promise<SubscriptionRow | undefined> {
  return tx
    .selectFrom('subscriptions')
    .selectAll()
    .where('environment', '=', environment)
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
}

export async function findSubscription(
  db: Executor,
  environment: string,
  id: string,
): Promise<SubscriptionRow | undefined> {
  return db
    .selectFrom('subscriptions')
    .selectAll()
    .where('environment', '=', environment)
    .where('id', '=', id)
    .executeTakeFirst();
}

/** Subscriptions whose stored status is live (their state at `now` may have ended since). */
export async function loadStoredLiveSubscriptions(
  db: Executor,
  environment: string,
  customerId: string,
): Promise<Subscription[]> {
  const rows = await db
    .selectFrom('subscriptions')
    .selectAll()
    .where('environment', '=', environment)
    .where('customer_id', '=', customerId)
    .where('status', 'not in', ['canceled', 'expired'])
    .orderBy('id')
    .execute();
  return rows.map(toSubscription);
}

/** Whether the customer ever trialled this plan (any version, converted or not). */
export async function hasTrialled(
  db: Executor,
  environment: string,
  customerId: string,
  planKey: string,
): Promise<boolean> {
  const row = await db
    .selectFrom('subscriptions')
    .select('id')
    .where('environment', '=', environment)
    .where('customer_id', '=', customerId)
    .where('plan_key', '=', planKey)
    .where('trial_ends_at', 'is not', null)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}

/** One page of a customer's subscriptions, oldest first (ids sort by creation time). */
export async function listCustomerSubscriptions(
  db: Executor,
  environment: string,
  customerId: string,
  page: { limit: number; afterId?: string | undefined },
): Promise<SubscriptionRow[]> {
  let q = db
    .selectFrom('subscriptions')
    .selectAll()
    .where('environment', '=', environment)
    .where('customer_id', '=', customerId);
  if (page.afterId !== undefined) q = q.where('id', '>', page.afterId);
  return q
    .orderBy('id')
    .limit(page.limit + 1)
    .execute();
}
