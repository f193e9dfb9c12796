/**
 * The domain vocabulary shared by the pure modules in src/domain and the services that feed them.
 * Everything here is plain data: no IO, no classes. Timestamps are `Date` (UTC instants).
 */

export type FeatureType = 'boolean' | 'config' | 'metered';
export type ResetInterval = 'none' | 'day' | 'week' | 'month' | 'year' | 'billing_period';
export type OverageMode = 'deny' | 'allow';
/** How usage events of a metered feature combine within a period. */
export type Aggregation = 'sum' | 'max' | 'unique';
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface Feature {
  key: string;
  name: string;
  type: FeatureType;
  unit: string | null;
  description: string | null;
  aggregation: Aggregation;
  archived: boolean;
}

interface EntitlementBase {
  feature: string;
  /** CEL expression over `customer.attributes` and `context`; null when unconditional. */
  condition: string | null;
}

export interface BooleanEntitlement extends EntitlementBase {
  type: 'boolean';
  enabled: boolean;
}

export interface ConfigEntitlement extends EntitlementBase {
  type: 'config';
  value: JsonValue;
}

export interface MeteredEntitlement extends EntitlementBase {
  type: 'metered';
  /** null is unlimited. */
  limit: number | null;
  reset: ResetInterval;
  overage: OverageMode;
  notifyAtPercent: number[];
  /** When true the limit is multiplied by the subscription's quantity (seats). */
  perSeat: boolean;
}

/** One entry of a plan version, as stored. The union is discriminated by the feature's type. */
export type PlanEntitlement = BooleanEntitlement | ConfigEntitlement | MeteredEntitlement;

export type TrialEnd = 'convert' | 'cancel' | 'downgrade';

export interface PlanVersion {
  planKey: string;
  version: number;
  addon: boolean;
  trial: { days: number; onEnd: TrialEnd; downgradeTo: string | null } | null;
  entitlements: PlanEntitlement[];
}

/** `scheduled`: its start is still to come; it then becomes `trialing` or `active` by itself. */
export type SubscriptionStatus =
  | 'scheduled'
  | 'trialing'
  | 'active'
  | 'past_due'
  | 'paused'
  | 'canceled'
  | 'expired';

/**
 * A subscription as stored. The status at any instant is derived from these timestamps and `now`
 * (see subscription-state.ts), so a decision never waits for a background job.
 */
export interface Subscription {
  id: string;
  customerId: string;
  planKey: string;
  planVersion: number;
  addon: boolean;
  /** The last status a transition persisted. */
  status: SubscriptionStatus;
  quantity: number;
  startedAt: Date;
  /** Billing anchor: periods of `billing_period` resets and the subscription's own periods start here. */
  billingAnchor: Date;
  trialEndsAt: Date | null;
  trialOnEnd: TrialEnd | null;
  trialDowngradeTo: string | null;
  currentPeriodStart: Date;
  currentPeriodEnd: Date;
  cancelAtPeriodEnd: boolean;
  scheduledChange: { planKey: string; planVersion: number | null; at: Date } | null;
  pastDueSince: Date | null;
  pausedAt: Date | null;
  endedAt: Date | null;
  /** The Stripe subscription and item this one is linked to (read-only here; set from Stripe's events). */
  stripe?: { subscriptionId: string; itemId: string | null } | null;
}

export type OverrideEffect =
  | { type: 'boolean'; enabled: boolean }
  | { type: 'config'; value: JsonValue }
  | { type: 'metered'; limit: number | null };

export interface Override {
  id: string;
  customerId: string;
  feature: string;
  effect: OverrideEffect;
  condition: string | null;
  startsAt: Date;
  /** null: open-ended. An ended override keeps its row with `endedAt` set. */
  expiresAt: Date | null;
  endedAt: Date | null;
  reason: string;
}

export interface CreditGrant {
  id: string;
  customerId: string;
  feature: string;
  amount: number;
  priority: number;
  effectiveAt: Date;
  expiresAt: Date | null;
  createdAt: Date;
  voidedAt: Date | null;
  reason: string;
}

export type CustomerAttributes = Record<string, string | number | boolean>;

/** Environment-level policy that shapes access per subscription state. */
export interface AccessPolicy {
  /** How long past_due keeps full access. */
  pastDueGraceMs: number;
  /** Plan key whose latest version applies when the base plan grants nothing; null for none. */
  fallbackPlan: PlanVersion | null;
}

/** Everything the PDP needs to answer for one customer (the PIP's output). */
export interface CustomerSnapshot {
  environment: string;
  customerId: string;
  exists: boolean;
  attributes: CustomerAttributes;
  /** Entitlement version: grows with every change to what the customer holds. */
  version: number;
  features: Map<string, Feature>;
  subscriptions: Subscription[];
  /** Plan versions referenced by the subscriptions, keyed `${planKey}@${version}`. */
  planVersions: Map<string, PlanVersion>;
  overrides: Override[];
  grants: CreditGrant[];
  policy: AccessPolicy;
}

export type DecisionReason =
  | 'granted'
  | 'not_in_plan'
  | 'disabled_by_override'
  | 'limit_exceeded'
  | 'no_subscription'
  | 'subscription_inactive'
  | 'trial_expired'
  | 'past_due_grace_ended'
  | 'condition_failed'
  | 'unknown_customer'
  | 'unknown_feature';

export type SourceKind = 'plan' | 'addon' | 'override' | 'grant';
export interface EntitlementSource {
  kind: SourceKind;
  id: string;
  /** When a time-boxed exception (override or credit grant) ends by itself; ISO 8601, as served. */
  ends_at?: string;
}
