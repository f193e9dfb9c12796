/**
 * Decisions: may this customer use this feature, in this context, now? Pure over the output of
 * resolveEntitlements; serves `POST /v1/check` (decide) and `GET /v1/customers/{id}/entitlements`
 * (describeEntitlements). The service adds customer_id and version.
 */
import { type Applied, applyLayers, meteredAllows, meteredStanding } from './apply-layers.ts';
import type { ConditionContext, ConditionInput, ConditionRefusal } from './conditions.ts';
import type { ResolvedEntitlements, ResolvedMetered } from './resolved.ts';
import type {
  CustomerAttributes,
  DecisionReason,
  EntitlementSource,
  Feature,
  FeatureType,
  JsonValue,
  OverageMode,
} from './types.ts';

export interface Decision {
  allowed: boolean;
  reason: DecisionReason;
  feature: string;
  /** Absent only for unknown_customer and unknown_feature. */
  type?: FeatureType;
  /** Config features: the value that applies. */
  value?: JsonValue;
  /** Metered features: the limit without credit; null is unlimited. */
  limit?: number | null;
  used?: number;
  /** Unused limit plus available credit; null when unlimited. */
  remaining?: number | null;
  /** Absent for features that never reset. */
  resetsAt?: Date | null;
  /** Usage in the period beyond the limit that credit did not pay for (`overage_used`). */
  overageUsed?: number;
  /** The layers (and, for metered features, the credit grants) behind the answer. */
  sources: EntitlementSource[];
  /** A condition that was refused (over its cost bound) rather than evaluated; for the log. */
  refused?: ConditionRefusal;
}

export function decide(
  resolved: ResolvedEntitlements,
  featureKey: string,
  quantity: number,
  context: ConditionContext,
  attributes: CustomerAttributes = resolved.attributes,
): Decision {
  const input: ConditionInput = { customer: { attributes }, context };
  const decision = decideWith(resolved, featureKey, quantity, input);
  if (input.refused !== undefined) decision.refused = input.refused;
  return decision;
}

function decideWith(
  resolved: ResolvedEntitlements,
  featureKey: string,
  quantity: number,
  input: ConditionInput,
): Decision {
  if (!resolved.exists)
    return { allowed: false, reason: 'unknown_customer', feature: featureKey, sources: [] };
  const feature = resolved.features.get(featureKey);
  if (feature === undefined) {
    return { allowed: false, reason: 'unknown_feature', feature: featureKey, sources: [] };
  }
  const applied = evaluate(resolved, feature, input);
  const type = feature.type;
  if (!applied.granted) {
    // Nothing grants it: the customer's standing says why, unless a condition or an override does.
    const reason = applied.why === 'not_granted' ? resolved.denyReason : applied.why;
    return { feature: featureKey, type, allowed: false, reason, sources: applied.sources };
  }
  switch (applied.type) {
    case 'boolean':
      return { feature: featureKey, type, allowed: true, reason: 'granted', sources: applied.sources };
    case 'config':
      return {
        feature: featureKey,
        type,
        allowed: true,
        reason: 'granted',
        value: applied.value,
        sources: applied.sources,
      };
    case 'metered': {
      const metered = applied.entitlement;
      const standing = meteredStanding(metered, applied.limit);
      const allowed = meteredAllows(metered, standing, quantity);
      const decision: Decision = {
        feature: featureKey,
        type,
        allowed,
        reason: allowed ? 'granted' : 'limit_exceeded',
        limit: applied.limit,
        used: metered.used,
        remaining: standing.remaining,
        overageUsed: standing.overage,
        sources: meteredSources(applied.sources, metered, applied.limit),
      };
      if (metered.resetsAt !== null) decision.resetsAt = metered.resetsAt;
      return decision;
    }
  }
}

/** One row of `GET /v1/customers/{id}/entitlements`. */
export interface EntitlementDescription {
  feature: string;
  type: FeatureType;
  hasAccess: boolean;
  /** Boolean features. */
  enabled?: boolean;
  /** Config features with access. */
  value?: JsonValue;
  /** Metered features with access, as in Decision. */
  limit?: number | null;
  used?: number;
  remaining?: number | null;
  resetsAt?: Date | null;
  overageUsed?: number;
  /** Whether usage may run past `remaining` (`allow`) or is refused (`deny`). */
  overageMode?: OverageMode;
  sources: EntitlementSource[];
}

/**
 * Every live catalog feature plus any archived one the customer still holds, sorted by key, with
 * conditions evaluated against `context` (often empty: a condition on a context key then fails).
 * An unknown customer holds nothing: the list is empty.
 */
export function describeEntitlements(
  resolved: ResolvedEntitlements,
  attributes: CustomerAttributes = resolved.attributes,
  context: ConditionContext = {},
): EntitlementDescription[] {
  if (!resolved.exists) return [];
  const features = [...resolved.features.values()]
    .filter((f) => !f.archived || resolved.entitlements.has(f.key))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const input: ConditionInput = { customer: { attributes }, context };
  return features.map((feature) => describe(evaluate(resolved, feature, input), feature));
}

function describe(applied: Applied, feature: Feature): EntitlementDescription {
  const row = { feature: feature.key, type: feature.type, sources: applied.sources };
  if (!applied.granted) {
    return { ...row, hasAccess: false, ...(feature.type === 'boolean' ? { enabled: false } : {}) };
  }
  switch (applied.type) {
    case 'boolean':
      return { ...row, hasAccess: true, enabled: true };
    case 'config':
      return { ...row, hasAccess: true, value: applied.value };
    case 'metered': {
      const metered = applied.entitlement;
      const standing = meteredStanding(metered, applied.limit);
      const hasAccess = standing.remaining === null || metered.overage === 'allow' || standing.remaining > 0;
      return {
        ...row,
        hasAccess,
        limit: applied.limit,
        used: metered.used,
        remaining: standing.remaining,
        ...resetsAtOf(metered),
        overageUsed: standing.overage,
        overageMode: metered.overage,
        sources: meteredSources(applied.sources, metered, applied.limit),
      };
    }
  }
}

function evaluate(resolved: ResolvedEntitlements, feature: Feature, input: ConditionInput): Applied {
  const entitlement = resolved.entitlements.get(feature.key);
  if (entitlement === undefined) return { granted: false, why: 'not_granted', sources: [] };
  return applyLayers(entitlement, input);
}

function resetsAtOf(metered: ResolvedMetered): { resetsAt?: Date } {
  return metered.resetsAt === null ? {} : { resetsAt: metered.resetsAt };
}

/** Credit matters only under a limit; unlimited usage never draws it. */
function meteredSources(
  layers: EntitlementSource[],
  metered: ResolvedMetered,
  limit: number | null,
): EntitlementSource[] {
  return limit === null ? layers : [...layers, ...metered.credit.sources];
}
