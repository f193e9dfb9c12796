/**
 * Evaluates a resolved entitlement's layers against a check's context: which layers apply, and
 * what they grant. Shared by `decide` (one feature) and `describeEntitlements` (all of them).
 */
import { type ConditionInput, evaluateCondition } from './conditions.ts';
import { remainingWithin } from './quota.ts';
import type { ResolvedEntitlement, ResolvedMetered } from './resolved.ts';
import type { EntitlementSource, JsonValue } from './types.ts';

export type Applied =
  /**
   * not_granted: no layer grants the feature (or the plan and add-on layers that apply disable it);
   * disabled_by_override: an override that applies disables it;
   * condition_failed: some layer would have granted it, but its condition does not hold.
   */
  | {
      granted: false;
      why: 'not_granted' | 'disabled_by_override' | 'condition_failed';
      sources: EntitlementSource[];
    }
  | { granted: true; type: 'boolean'; sources: EntitlementSource[] }
  | { granted: true; type: 'config'; value: JsonValue; sources: EntitlementSource[] }
  | {
      granted: true;
      type: 'metered';
      limit: number | null;
      sources: EntitlementSource[];
      entitlement: ResolvedMetered;
    };

interface Conditional {
  source: EntitlementSource;
  condition: string | null;
}

export function applyLayers(entitlement: ResolvedEntitlement, input: ConditionInput): Applied {
  // Conditions are evaluated lazily, in precedence order, so a winning override spares the rest.
  // Plain loops: this runs on every check.
  switch (entitlement.type) {
    case 'boolean': {
      const { layers } = entitlement;
      for (const l of layers) {
        if (isOverride(l) && holds(l, input)) {
          return l.enabled
            ? { granted: true, type: 'boolean', sources: [l.source] }
            : { granted: false, why: 'disabled_by_override', sources: [l.source] };
        }
      }
      const sources: EntitlementSource[] = [];
      let wouldGrant = false;
      for (const l of layers) {
        if (!l.enabled) continue;
        wouldGrant = true;
        if (!isOverride(l) && holds(l, input)) sources.push(l.source);
      }
      if (sources.length > 0) return { granted: true, type: 'boolean', sources };
      // Some layer would have enabled it: only its condition stood in the way.
      return denied(wouldGrant);
    }
    case 'config': {
      for (const l of entitlement.layers) {
        if (holds(l, input)) return { granted: true, type: 'config', value: l.value, sources: [l.source] };
      }
      return denied(entitlement.layers.length > 0);
    }
    case 'metered': {
      const { layers } = entitlement;
      for (const l of layers) {
        if (isOverride(l) && holds(l, input)) {
          return { granted: true, type: 'metered', limit: l.limit, sources: [l.source], entitlement };
        }
      }
      // Add-on limits stack on the plan's; one unlimited layer makes the sum unlimited.
      const sources: EntitlementSource[] = [];
      let limit: number | null = 0;
      for (const l of layers) {
        if (isOverride(l) || !holds(l, input)) continue;
        sources.push(l.source);
        limit = limit === null || l.limit === null ? null : limit + l.limit;
      }
      if (sources.length === 0) return denied(layers.length > 0);
      return { granted: true, type: 'metered', limit, sources, entitlement };
    }
  }
}

function holds(layer: Conditional, input: ConditionInput): boolean {
  return layer.condition === null || evaluateCondition(layer.condition, input);
}

function isOverride(layer: Conditional): boolean {
  return layer.source.kind === 'override';
}

function denied(anyLayerWouldGrant: boolean): Applied {
  return { granted: false, why: anyLayerWouldGrant ? 'condition_failed' : 'not_granted', sources: [] };
}

/** Where a metered feature stands against its limit and credit. */
export interface MeteredStanding {
  /** What can still be used before overage: unused limit plus credit; null when unlimited. */
  remaining: number | null;
  /** Usage in the period beyond the limit that credit did not pay for. */
  overage: number;
}

/**
 * Credit pays for what the limit does not, so what is left is the unused part of the limit plus
 * the credit still available (the quota model's `remaining`, quota.ts). Usage already beyond the
 * limit has drawn credit down (or is overage), so it is not subtracted from the credit a second
 * time; the reading has already taken the credit live holds claim out of `available`.
 */
export function meteredStanding(metered: ResolvedMetered, limit: number | null): MeteredStanding {
  if (limit === null) return { remaining: null, overage: 0 };
  const beyondLimit = Math.max(0, metered.used - limit);
  return {
    remaining: remainingWithin(limit, metered.used, metered.credit.available),
    overage: Math.max(0, beyondLimit - metered.credit.used),
  };
}

/** Whether `quantity` more fits: unlimited, overage allowed, or within what remains. */
export function meteredAllows(
  metered: ResolvedMetered,
  standing: MeteredStanding,
  quantity: number,
): boolean {
  return standing.remaining === null || metered.overage === 'allow' || quantity <= standing.remaining;
}
