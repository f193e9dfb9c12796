/**
 * A small scenario builder for entitlement tests:
 *   snapshot().withFeature('api', 'metered').onPlan('pro', [metered('api', 100)]).withOverride(...).build()
 * Everything is dated relative to T0 (2025-01-01) and NOW (2025-03-15 12:00 UTC).
 */
import type {
  BooleanEntitlement,
  ConfigEntitlement,
  CreditGrant,
  CustomerAttributes,
  CustomerSnapshot,
  Feature,
  FeatureType,
  JsonValue,
  MeteredEntitlement,
  Override,
  OverrideEffect,
  PlanEntitlement,
  PlanVersion,
  Subscription,
} from '../../src/domain/types.ts';

export const T0 = new Date('2025-01-01T00:00:00Z');
export const NOW = new Date('2025-03-15T12:00:00Z');
export const days = (n: number, from: Date = T0) => new Date(from.getTime() + n * 86_400_000);

export function flag(feature: string, fields: Partial<BooleanEntitlement> = {}): BooleanEntitlement {
  return { type: 'boolean', feature, enabled: true, condition: null, ...fields };
}

export function config(
  feature: string,
  value: JsonValue,
  fields: Partial<ConfigEntitlement> = {},
): ConfigEntitlement {
  return { type: 'config', feature, value, condition: null, ...fields };
}

export function metered(
  feature: string,
  limit: number | null,
  fields: Partial<MeteredEntitlement> = {},
): MeteredEntitlement {
  return {
    type: 'metered',
    feature,
    limit,
    reset: 'month',
    overage: 'deny',
    notifyAtPercent: [],
    perSeat: false,
    condition: null,
    ...fields,
  };
}

export function plan(planKey: string, entitlements: PlanEntitlement[], fields: Partial<PlanVersion> = {}) {
  return { planKey, version: 1, addon: false, trial: null, entitlements, ...fields } satisfies PlanVersion;
}

function subscription(id: string, planKey: string, fields: Partial<Subscription>): Subscription {
  return {
    id,
    customerId: 'cus_1',
    planKey,
    planVersion: 1,
    addon: false,
    status: 'active',
    quantity: 1,
    startedAt: T0,
    billingAnchor: T0,
    trialEndsAt: null,
    trialOnEnd: null,
    trialDowngradeTo: null,
    currentPeriodStart: T0,
    currentPeriodEnd: new Date('2025-02-01T00:00:00Z'),
    cancelAtPeriodEnd: false,
    scheduledChange: null,
    pastDueSince: null,
    pausedAt: null,
    endedAt: null,
    ...fields,
  };
}

class SnapshotBuilder {
  private readonly value: CustomerSnapshot = {
    environment: 'env_test',
    customerId: 'cus_1',
    exists: true,
    attributes: {},
    version: 1,
    features: new Map(),
    subscriptions: [],
    planVersions: new Map(),
    overrides: [],
    grants: [],
    policy: { pastDueGraceMs: 3 * 86_400_000, fallbackPlan: null },
  };

  unknown(): this {
    this.value.exists = false;
    return this;
  }

  withAttributes(attributes: CustomerAttributes): this {
    this.value.attributes = attributes;
    return this;
  }

  withFeature(key: string, type: FeatureType, fields: Partial<Feature> = {}): this {
    this.value.features.set(key, {
      key,
      name: key,
      type,
      unit: null,
      description: null,
      aggregation: 'sum',
      archived: false,
      ...fields,
    });
    return this;
  }

  /** Adds a plan version without subscribing to it (e.g. the target of a scheduled change). */
  withPlan(version: PlanVersion): this {
    this.value.planVersions.set(`${version.planKey}@${version.version}`, version);
    return this;
  }

  /** The base subscription `sub_<planKey>`. */
  onPlan(planKey: string, entitlements: PlanEntitlement[], fields: Partial<Subscription> = {}): this {
    return this.subscribe(planKey, entitlements, false, fields);
  }

  /** An add-on subscription `sub_<planKey>`. */
  withAddon(planKey: string, entitlements: PlanEntitlement[], fields: Partial<Subscription> = {}): this {
    return this.subscribe(planKey, entitlements, true, fields);
  }

  withFallback(planKey: string, entitlements: PlanEntitlement[]): this {
    this.value.policy = { ...this.value.policy, fallbackPlan: plan(planKey, entitlements) };
    return this;
  }

  withOverride(id: string, feature: string, effect: OverrideEffect, fields: Partial<Override> = {}): this {
    this.value.overrides.push({
      id,
      customerId: 'cus_1',
      feature,
      effect,
      condition: null,
      startsAt: T0,
      expiresAt: null,
      endedAt: null,
      reason: 'test',
      ...fields,
    });
    return this;
  }

  withGrant(id: string, feature: string, amount: number, fields: Partial<CreditGrant> = {}): this {
    this.value.grants.push({
      id,
      customerId: 'cus_1',
      feature,
      amount,
      priority: 0,
      effectiveAt: T0,
      expiresAt: null,
      createdAt: T0,
      voidedAt: null,
      reason: 'test',
      ...fields,
    });
    return this;
  }

  build(): CustomerSnapshot {
    return this.value;
  }

  private subscribe(
    planKey: string,
    entitlements: PlanEntitlement[],
    addon: boolean,
    fields: Partial<Subscription>,
  ): this {
    const sub = subscription(`sub_${planKey}`, planKey, { addon, ...fields });
    this.withPlan(plan(planKey, entitlements, { addon, version: sub.planVersion }));
    this.value.subscriptions.push(sub);
    return this;
  }
}

export function snapshot(): SnapshotBuilder {
  return new SnapshotBuilder();
}
