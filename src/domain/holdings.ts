/**
 * What a customer holds at `now`: the plan (base subscription, or the fallback plan when the base
 * has no full access) and the add-ons with full access, plus the reason to give for features none
 * of them grants. Subscription state comes from subscription-state.ts, derived from `now`, so a
 * decision never waits for a background job to persist a transition.
 */
import type { DenyReason } from './resolved.ts';
import { accessOf, type PlanLookup, stateAt } from './subscription-state.ts';
import type { CustomerSnapshot, EntitlementSource, PlanVersion, Subscription } from './types.ts';

/** A plan version the customer holds, and where it comes from. */
export interface Holding {
  source: EntitlementSource;
  plan: PlanVersion;
  /** Seats: per-seat limits are multiplied by it. 1 for the fallback plan. */
  quantity: number;
  /** null for the fallback plan. */
  subscription: Subscription | null;
}

export interface Holdings {
  /** The base plan, or the fallback plan, or nothing. */
  plan: Holding | null;
  /** Add-ons with full access, in the order they started. */
  addons: Holding[];
  /** The base subscription even when it has no access: billing-period resets anchor on it. */
  baseSubscription: Subscription | null;
  denyReason: DenyReason;
}

interface Assessed {
  subscription: Subscription;
  full: boolean;
  reason: DenyReason;
  plan: PlanVersion | undefined;
}

export function holdingsOf(snapshot: CustomerSnapshot, now: Date): Holdings {
  const plans = planLookupOf(snapshot.planVersions);
  const assessed = snapshot.subscriptions.map((subscription): Assessed => {
    const { access, reason } = accessOf(subscription, now, snapshot.policy, plans);
    // A scheduled change or a trial downgrade may have switched the plan by now; the derived
    // state knows which plan version is in force, the stored row may not yet.
    const current = stateAt(subscription, now, plans);
    return {
      subscription,
      full: access === 'full',
      reason: reason === 'granted' ? 'not_in_plan' : reason,
      plan: snapshot.planVersions.get(`${current.planKey}@${current.planVersion}`),
    };
  });
  const base = pickBase(assessed.filter((a) => !a.subscription.addon));
  const addons = assessed
    .filter((a) => a.subscription.addon)
    .sort((a, b) => byStart(a.subscription, b.subscription));
  const heldAddons = addons.flatMap((a) => (a.full ? holdingOf(a, 'addon') : []));

  let plan: Holding | null = null;
  if (base?.full) {
    plan = holdingOf(base, 'plan')[0] ?? null;
  } else if (snapshot.policy.fallbackPlan !== null) {
    const fallback = snapshot.policy.fallbackPlan;
    plan = {
      source: { kind: 'plan', id: `fallback:${fallback.planKey}@v${fallback.version}` },
      plan: fallback,
      quantity: 1,
      subscription: null,
    };
  }
  return {
    plan,
    addons: heldAddons,
    baseSubscription: base?.subscription ?? null,
    denyReason: denyReasonOf(base, addons),
  };
}

/**
 * The base plan speaks for the customer: if it has no full access, features nobody grants are
 * denied with its reason even when an add-on still works. Without a base, add-ons speak.
 */
function denyReasonOf(base: Assessed | undefined, addons: Assessed[]): DenyReason {
  if (base !== undefined) return base.reason;
  if (addons.length === 0) return 'no_subscription';
  if (addons.some((a) => a.full)) return 'not_in_plan';
  return addons[addons.length - 1]!.reason;
}

/** One base plan per customer is the rule; should two slip through, the working, newer one wins. */
function pickBase(bases: Assessed[]): Assessed | undefined {
  return [...bases].sort(
    (a, b) => Number(b.full) - Number(a.full) || byStart(b.subscription, a.subscription),
  )[0];
}

function holdingOf(assessed: Assessed, kind: 'plan' | 'addon'): Holding[] {
  // A plan version missing from the snapshot grants nothing rather than failing the decision.
  if (assessed.plan === undefined) return [];
  return [
    {
      source: { kind, id: assessed.subscription.id },
      plan: assessed.plan,
      quantity: assessed.subscription.quantity,
      subscription: assessed.subscription,
    },
  ];
}

function byStart(a: Subscription, b: Subscription): number {
  return a.startedAt.getTime() - b.startedAt.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** The latest version of each plan the snapshot carries (for changes to "the latest version"). */
export function planLookupOf(planVersions: ReadonlyMap<string, PlanVersion>): PlanLookup {
  const latest = new Map<string, number>();
  for (const plan of planVersions.values()) {
    latest.set(plan.planKey, Math.max(plan.version, latest.get(plan.planKey) ?? 0));
  }
  return { latestVersion: (planKey) => latest.get(planKey) ?? null };
}
