/**
 * From a customer snapshot to the terms one usage event is counted under: the effective limit
 * (plan + add-ons + overrides, seats), the overage mode, the thresholds, the period (calendar or
 * billing-anchored) and the credit grants in burn-down order. The same resolution the decision
 * engine runs, so `POST /v1/check` and `POST /v1/usage` never disagree.
 *
 * Resolution is a pure function of the snapshot and the instant, and it only changes at the
 * snapshot's next time boundary (`nextChangeAfter`, shared with the decision engine) or at a usage
 * period boundary. So a result is cached per snapshot object (a new snapshot replaces it when
 * holdings change) until then, capped at a minute.
 */
import { applyLayers } from '../../domain/apply-layers.ts';
import { isGrantEffective, orderGrants } from '../../domain/burn-down.ts';
import { resolveEntitlements } from '../../domain/resolve.ts';
import type { CustomerSnapshot, DecisionReason, Feature } from '../../domain/types.ts';
import { nextChangeAfter } from '../../domain/validity.ts';
import { FOREVER_START, type StoredPeriod, type UsageTerms } from './store.ts';

export type TermsOutcome =
  | { kind: 'unknown_customer' }
  | { kind: 'unknown_feature' }
  | { kind: 'not_metered'; feature: Feature }
  | { kind: 'denied'; feature: Feature; reason: DecisionReason }
  | { kind: 'metered'; feature: Feature; terms: UsageTerms };

const MAX_CACHE_MS = 60_000;
const NEVER_MS = 8.64e15;

interface Cached {
  from: number;
  until: number;
  outcome: TermsOutcome;
}

const cache = new WeakMap<CustomerSnapshot, Map<string, Cached>>();

export function usageTermsOf(snapshot: CustomerSnapshot, featureKey: string, at: Date): TermsOutcome {
  const t = at.getTime();
  let perFeature = cache.get(snapshot);
  const hit = perFeature?.get(featureKey);
  if (hit && hit.from <= t && t < hit.until) return hit.outcome;
  const outcome = computeTerms(snapshot, featureKey, at);
  const [from, until] = validity(snapshot, t, outcome);
  if (!perFeature) {
    perFeature = new Map();
    cache.set(snapshot, perFeature);
  }
  perFeature.set(featureKey, { from, until, outcome });
  return outcome;
}

function computeTerms(snapshot: CustomerSnapshot, featureKey: string, at: Date): TermsOutcome {
  if (!snapshot.exists) return { kind: 'unknown_customer' };
  const feature = snapshot.features.get(featureKey);
  if (feature === undefined || feature.archived) return { kind: 'unknown_feature' };
  if (feature.type !== 'metered') return { kind: 'not_metered', feature };
  const resolved = resolveEntitlements(snapshot, at, () => ({ used: 0 }), featureKey);
  const entitlement = resolved.entitlements.get(featureKey);
  if (entitlement === undefined || entitlement.type !== 'metered') {
    return { kind: 'denied', feature, reason: resolved.denyReason };
  }
  const applied = applyLayers(entitlement, { customer: { attributes: snapshot.attributes }, context: {} });
  if (!applied.granted || applied.type !== 'metered') {
    const reason =
      !applied.granted && applied.why === 'condition_failed' ? 'condition_failed' : resolved.denyReason;
    return { kind: 'denied', feature, reason };
  }
  const limit = applied.limit;
  const thresholds =
    limit === null
      ? []
      : [...new Set([...entitlement.notifyAtPercent, 100])].filter((p) => p > 0).sort((a, b) => a - b);
  const grants =
    feature.aggregation === 'sum'
      ? orderGrants(snapshot.grants.filter((g) => g.feature === featureKey && isGrantEffective(g, at))).map(
          (g) => ({ id: g.id, amount: g.amount }),
        )
      : [];
  const period: StoredPeriod =
    entitlement.resetsAt === null
      ? { start: FOREVER_START, end: null }
      : { start: entitlement.period.start, end: entitlement.period.end };
  return {
    kind: 'metered',
    feature,
    terms: {
      aggregation: feature.aggregation,
      limit,
      overage: entitlement.overage,
      thresholds,
      grants,
      period,
    },
  };
}

/** The stretch of time around `t` in which the outcome cannot change. */
function validity(snapshot: CustomerSnapshot, t: number, outcome: TermsOutcome): [number, number] {
  let from = t;
  let until = t + MAX_CACHE_MS;
  if (outcome.kind === 'metered') {
    from = Math.max(from, outcome.terms.period.start.getTime());
    until = Math.min(until, outcome.terms.period.end?.getTime() ?? NEVER_MS);
  }
  const next = nextChangeAfter(snapshot, new Date(t));
  if (next) until = Math.min(until, next.getTime());
  return [from, until];
}
