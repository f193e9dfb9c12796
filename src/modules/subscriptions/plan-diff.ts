/**
 * What a subscription gains and loses when it moves from one plan version to another: pure, over
 * the two versions and the subscription's quantity (per-seat limits are compared as the customer
 * feels them, multiplied by the seats).
 */
import type { JsonValue, PlanEntitlement, PlanVersion } from '../../domain/types.ts';

export interface LimitChange {
  feature: string;
  /** null is unlimited. */
  from: number | null;
  to: number | null;
  direction: 'raised' | 'lowered';
}

export interface ValueChange {
  feature: string;
  from: JsonValue;
  to: JsonValue;
}

export interface SettingChange {
  feature: string;
  field: 'reset' | 'overage' | 'condition' | 'per_seat';
  from: unknown;
  to: unknown;
}

export interface PlanImpact {
  features_added: string[];
  features_removed: string[];
  limits_changed: LimitChange[];
  values_changed: ValueChange[];
  settings_changed: SettingChange[];
}

/** A disabled boolean entry grants nothing, so turning it on is a gain like adding it. */
function granting(plan: PlanVersion): Map<string, PlanEntitlement> {
  return new Map(
    plan.entitlements.filter((e) => e.type !== 'boolean' || e.enabled).map((e) => [e.feature, e] as const),
  );
}

function effectiveLimit(limit: number | null, perSeat: boolean, quantity: number): number | null {
  return limit === null ? null : perSeat ? limit * quantity : limit;
}

function raised(from: number | null, to: number | null): boolean {
  return to === null || (from !== null && to > from);
}

export function planImpact(from: PlanVersion, to: PlanVersion, quantity = 1): PlanImpact {
  const before = granting(from);
  const after = granting(to);
  const impact: PlanImpact = {
    features_added: [...after.keys()].filter((k) => !before.has(k)).sort(),
    features_removed: [...before.keys()].filter((k) => !after.has(k)).sort(),
    limits_changed: [],
    values_changed: [],
    settings_changed: [],
  };
  for (const feature of [...after.keys()].sort()) {
    const a = before.get(feature);
    const b = after.get(feature);
    if (a === undefined || b === undefined) continue;
    if (a.condition !== b.condition) {
      impact.settings_changed.push({ feature, field: 'condition', from: a.condition, to: b.condition });
    }
    if (a.type === 'config' && b.type === 'config' && JSON.stringify(a.value) !== JSON.stringify(b.value)) {
      impact.values_changed.push({ feature, from: a.value, to: b.value });
    }
    if (a.type === 'metered' && b.type === 'metered') {
      const limitFrom = effectiveLimit(a.limit, a.perSeat, quantity);
      const limitTo = effectiveLimit(b.limit, b.perSeat, quantity);
      if (limitFrom !== limitTo) {
        impact.limits_changed.push({
          feature,
          from: limitFrom,
          to: limitTo,
          direction: raised(limitFrom, limitTo) ? 'raised' : 'lowered',
        });
      }
      for (const field of ['reset', 'overage'] as const) {
        if (a[field] !== b[field])
          impact.settings_changed.push({ feature, field, from: a[field], to: b[field] });
      }
      if (a.perSeat !== b.perSeat) {
        impact.settings_changed.push({ feature, field: 'per_seat', from: a.perSeat, to: b.perSeat });
      }
    }
  }
  return impact;
}

export function isEmptyImpact(impact: PlanImpact): boolean {
  return Object.values(impact).every((list) => list.length === 0);
}
