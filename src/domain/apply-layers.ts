/**
 * Evaluates a resolved entitlement's layers against a check's context: which layers apply, and
 * what they grant. Shared by `decide` (one feature) and `describeEntitlements` (all of them).
 */
import { type ConditionInput, evaluateCondition } from './conditions.ts';
import type { ResolvedEntitlement, ResolvedMetered } from './resolved.ts';
import type { EntitlementSource, JsonValue } from './types.ts';

export type Applied =
  /**
   * not_granted: no layer grants the feature (or the layers that apply disable it);
   * condition_failed: some layer would have granted it, but its condition does not hold.
   */
  | { granted: false; why: 'not_granted' | 'condition_failed'; sources: EntitlementSource[] }
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
  const holds = (layer: Conditional) => layer.condition === null || evaluateCondition(layer.condition, input);
  const isOverride = (layer: Conditional) => layer.source.kind === 'override';

  switch (entitlement.type) {
    case 'boolean': {
      const override = entitlement.layers.find((l) => isOverride(l) && holds(l));
      if (override !== undefined) {
        return override.enabled
          ? { granted: true, type: 'boolean', sources: [override.source] }
          : { granted: false, why: 'not_granted', sources: [override.source] };
      }
      const enabling = entitlement.layers.filter((l) => !isOverride(l) && l.enabled && holds(l));
      if (enabling.length > 0)
        return { granted: true, type: 'boolean', sources: enabling.map((l) => l.source) };
      // Some layer would have enabled it: only its condition stood in the way.
      return denied(entitlement.layers.some((l) => l.enabled));
    }
    case 'config': {
      const applied = entitlement.layers.find(holds);
      if (applied !== undefined) {
        return { granted: true, type: 'config', value: applied.value, sources: [applied.source] };
      }
      return denied(entitlement.layers.length > 0);
    }
    case 'metered': {
      const override = entitlement.layers.find((l) => isOverride(l) && holds(l));
      if (override !== undefined) {
        const sources = [override.source];
        return { granted: true, type: 'metered', limit: override.limit, sources, entitlement };
      }
      const adding = entitlement.layers.filter((l) => !isOverride(l) && holds(l));
      if (adding.length === 0) return denied(entitlement.layers.length > 0);
      // Add-on limits stack on the plan's; one unlimited layer makes the sum unlimited.
      const limit = adding.some((l) => l.limit === null)
        ? null
        : adding.reduce((sum, l) => sum + (l.limit ?? 0), 0);
      return { granted: true, type: 'metered', limit, sources: adding.map((l) => l.source), entitlement };
    }
  }
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
 * the credit still available. Usage already beyond the limit has drawn credit down (or is
 * overage), so it is not subtracted from the credit a second time.
 */
export function meteredStanding(metered: ResolvedMetered, limit: number | null): MeteredStanding {
  if (limit === null) return { remaining: null, overage: 0 };
  const beyondLimit = Math.max(0, metered.used - limit);
  return {
    remaining: Math.max(0, limit - metered.used) + metered.credit.available,
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
