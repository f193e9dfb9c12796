/**
 * Stripe subscription snapshot -> the Tessera subscriptions it stands for. Pure: the same snapshot
 * and invoice payments always give the same answer, whatever order they arrived in, which is what
 * lets Stripe's events be applied in any order (see docs/stripe.md, section 4).
 */
import type { Subscription, SubscriptionStatus } from './types.ts';

/** One item of a Stripe subscription, as Tessera reads it (times in seconds, as Stripe sends them). */
export interface StripeItemSnapshot {
  id: string;
  priceId: string;
  lookupKey: string | null;
  quantity: number;
  /** Current API versions keep billing periods on the items. */
  periodStart: number;
  periodEnd: number;
}

export interface StripeSubscriptionSnapshot {
  id: string;
  customer: string;
  status: string;
  startDate: number;
  billingCycleAnchor: number;
  trialEnd: number | null;
  cancelAtPeriodEnd: boolean;
  cancelAt: number | null;
  canceledAt: number | null;
  endedAt: number | null;
  items: StripeItemSnapshot[];
}

/** What Tessera knows of one invoice's payment (merged so that the order of its events does not matter). */
export interface InvoicePayment {
  id: string;
  subscription: string;
  status: 'failed' | 'paid';
  /** The first failure seen (seconds); null when only success was seen. */
  failedAt: number | null;
  paidAt: number | null;
}

export interface PlanRef {
  planKey: string;
  planVersion: number;
  addon: boolean;
}

/** A Tessera subscription as a Stripe item wants it; `slot` is `base` or the add-on item's id. */
export interface DesiredSubscription {
  slot: string;
  itemId: string;
  state: Omit<Subscription, 'id' | 'customerId'>;
}

export interface DesiredState {
  /** Empty when the Stripe status grants nothing yet (incomplete). */
  subscriptions: DesiredSubscription[];
  unmapped: StripeItemSnapshot[];
  /** Items of a second base plan on one Stripe subscription: Tessera holds one base plan. */
  extraBase: StripeItemSnapshot[];
}

const TERMINAL = new Set(['canceled', 'incomplete_expired']);

export function isTerminalStripeStatus(status: string): boolean {
  return TERMINAL.has(status);
}

/** A stored high-water mark or an incoming snapshot, for ordering. */
export interface SnapshotMark {
  created: number;
  hash: string;
  terminal: boolean;
}

/**
 * Whether `incoming` replaces `stored`. A canceled subscription never comes back in Stripe, so a
 * terminal state wins over any live one; otherwise the later event wins; on a tie in Stripe's
 * one-second `created` the caller re-fetches when it can, else the larger state hash wins so that
 * every order ends in the same state.
 */
export function compareSnapshots(
  incoming: SnapshotMark,
  stored: SnapshotMark | null,
): 'newer' | 'stale' | 'same' | 'tie' {
  if (stored === null) return 'newer';
  if (incoming.hash === stored.hash) return 'same';
  if (incoming.terminal !== stored.terminal) return incoming.terminal ? 'newer' : 'stale';
  if (incoming.created !== stored.created) return incoming.created > stored.created ? 'newer' : 'stale';
  return 'tie';
}

/** The deterministic answer to a tie without a re-fetch. */
export function breakTie(incoming: SnapshotMark, stored: SnapshotMark): 'newer' | 'stale' {
  return incoming.hash > stored.hash ? 'newer' : 'stale';
}

const at = (seconds: number) => new Date(seconds * 1000);

/**
 * The Tessera status, with invoices newer than the snapshot taken into account: a failed, unpaid
 * invoice after an active snapshot means past_due; a paid one after a past_due snapshot, with
 * nothing left unpaid, means recovered. `snapshotCreated` is when the snapshot's event was created.
 */
export function effectiveStatus(
  snapshot: StripeSubscriptionSnapshot,
  snapshotCreated: number,
  invoices: InvoicePayment[],
): { status: SubscriptionStatus | null; pastDueSince: Date | null } {
  const unpaid = invoices.filter((i) => i.status === 'failed');
  const firstFailure = unpaid.reduce<number | null>(
    (min, i) => (i.failedAt !== null && (min === null || i.failedAt < min) ? i.failedAt : min),
    null,
  );
  switch (snapshot.status) {
    case 'trialing':
    case 'active': {
      const failedSince = unpaid.some((i) => (i.failedAt ?? 0) >= snapshotCreated);
      if (failedSince && firstFailure !== null) return { status: 'past_due', pastDueSince: at(firstFailure) };
      return { status: snapshot.status, pastDueSince: null };
    }
    case 'past_due':
    case 'unpaid': {
      const recovered =
        unpaid.length === 0 &&
        invoices.some((i) => i.status === 'paid' && (i.paidAt ?? 0) >= snapshotCreated);
      if (recovered) return { status: 'active', pastDueSince: null };
      return { status: 'past_due', pastDueSince: at(firstFailure ?? snapshotCreated) };
    }
    case 'paused':
      return { status: 'paused', pastDueSince: null };
    case 'canceled':
      return { status: 'canceled', pastDueSince: null };
    case 'incomplete_expired':
      return { status: 'expired', pastDueSince: null };
    default:
      // incomplete: the first payment has not gone through; nothing is granted yet.
      return { status: null, pastDueSince: null };
  }
}

/**
 * The Tessera subscriptions a Stripe subscription stands for: one per item, the first item on a base
 * plan as `base`, each add-on item under its own id. `resolve` maps an item's price to a plan.
 */
export function desiredSubscriptions(
  snapshot: StripeSubscriptionSnapshot,
  snapshotCreated: number,
  invoices: InvoicePayment[],
  resolve: (item: StripeItemSnapshot) => PlanRef | null,
): DesiredState {
  const { status, pastDueSince } = effectiveStatus(snapshot, snapshotCreated, invoices);
  const result: DesiredState = { subscriptions: [], unmapped: [], extraBase: [] };
  let baseTaken = false;
  for (const item of snapshot.items) {
    const plan = resolve(item);
    if (plan === null) {
      result.unmapped.push(item);
      continue;
    }
    if (!plan.addon && baseTaken) {
      result.extraBase.push(item);
      continue;
    }
    if (!plan.addon) baseTaken = true;
    if (status === null) continue;
    result.subscriptions.push({
      slot: plan.addon ? item.id : 'base',
      itemId: item.id,
      state: itemState(snapshot, snapshotCreated, item, plan, status, pastDueSince),
    });
  }
  return result;
}

function itemState(
  snapshot: StripeSubscriptionSnapshot,
  snapshotCreated: number,
  item: StripeItemSnapshot,
  plan: PlanRef,
  status: SubscriptionStatus,
  pastDueSince: Date | null,
): Omit<Subscription, 'id' | 'customerId'> {
  // `cancel_at` inside the period ends it there; Tessera cancels at its period end.
  const cancelAt = snapshot.cancelAt;
  const periodEnd = cancelAt !== null && cancelAt < item.periodEnd ? cancelAt : item.periodEnd;
  const ended = status === 'canceled' || status === 'expired';
  return {
    planKey: plan.planKey,
    planVersion: plan.planVersion,
    addon: plan.addon,
    status,
    quantity: item.quantity,
    startedAt: at(snapshot.startDate),
    billingAnchor: at(snapshot.billingCycleAnchor),
    trialEndsAt: snapshot.trialEnd === null ? null : at(snapshot.trialEnd),
    trialOnEnd: snapshot.trialEnd === null ? null : 'convert',
    trialDowngradeTo: null,
    currentPeriodStart: at(item.periodStart),
    currentPeriodEnd: at(Math.max(periodEnd, item.periodStart)),
    cancelAtPeriodEnd: !ended && (snapshot.cancelAtPeriodEnd || cancelAt !== null),
    scheduledChange: null,
    pastDueSince,
    pausedAt: status === 'paused' ? at(snapshotCreated) : null,
    endedAt: ended ? at(snapshot.endedAt ?? snapshot.canceledAt ?? snapshotCreated) : null,
  };
}

/** Two payments of one invoice merged: paid is final, the first failure is kept. */
export function mergeInvoicePayment(a: InvoicePayment | null, b: InvoicePayment): InvoicePayment {
  if (a === null) return b;
  const min = (x: number | null, y: number | null) => (x === null ? y : y === null ? x : Math.min(x, y));
  return {
    id: b.id,
    subscription: b.subscription || a.subscription,
    status: a.status === 'paid' || b.status === 'paid' ? 'paid' : 'failed',
    failedAt: min(a.failedAt, b.failedAt),
    paidAt: min(a.paidAt, b.paidAt),
  };
}
