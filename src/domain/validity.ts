import { planLookupOf } from './holdings.ts';
import { stateAt } from './subscription-state.ts';
import type { CustomerSnapshot } from './types.ts';

/**
 * The first instant after `now` at which resolving `snapshot` may give another answer, usage aside:
 * a subscription, override or grant starts, ends or moves to its next period, or a past-due grace
 * runs out. Until then a resolution of the snapshot can be reused as it is. `null`: nothing is due.
 */
export function nextChangeAfter(snapshot: CustomerSnapshot, now: Date): Date | null {
  const t = now.getTime();
  let next = Number.POSITIVE_INFINITY;
  const consider = (d: Date | null | undefined) => {
    if (d) {
      const v = d.getTime();
      if (v > t && v < next) next = v;
    }
  };
  const plans = planLookupOf(snapshot.planVersions);
  // Stored subscriptions may lag behind time: their boundaries count from their state at `now`.
  for (const sub of snapshot.subscriptions.map((s) => stateAt(s, now, plans))) {
    consider(sub.startedAt);
    consider(sub.trialEndsAt);
    consider(sub.currentPeriodEnd);
    consider(sub.scheduledChange?.at);
    consider(sub.endedAt);
    if (sub.pastDueSince) consider(new Date(sub.pastDueSince.getTime() + snapshot.policy.pastDueGraceMs));
  }
  for (const o of snapshot.overrides) {
    consider(o.startsAt);
    consider(o.expiresAt);
    consider(o.endedAt);
  }
  for (const g of snapshot.grants) {
    consider(g.effectiveAt);
    consider(g.expiresAt);
    consider(g.voidedAt);
  }
  return Number.isFinite(next) ? new Date(next) : null;
}
