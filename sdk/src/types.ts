/**
 * Request and response shapes of the routes the SDK calls, written from the API contract and
 * /openapi.json. test/sdk/schema-drift.test.ts compares them with the server's document.
 */

export type FeatureType = 'boolean' | 'config' | 'metered';

export type CheckReason =
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

export interface EntitlementSource {
  kind: 'plan' | 'addon' | 'override' | 'grant';
  id: string;
}

export interface CheckRequest {
  customer_id: string;
  feature: string;
  quantity?: number;
  context?: Record<string, string | number | boolean>;
}

export interface CheckResult {
  allowed: boolean;
  reason: CheckReason;
  customer_id: string;
  feature: string;
  type?: FeatureType;
  value?: unknown;
  limit?: number | null;
  used?: number;
  remaining?: number | null;
  resets_at?: string;
  overage_used?: number;
  sources: EntitlementSource[];
  version: number;
}

export interface CustomerEntitlement {
  feature: string;
  type: FeatureType;
  has_access: boolean;
  enabled?: boolean;
  value?: unknown;
  limit?: number | null;
  used?: number;
  remaining?: number | null;
  resets_at?: string;
  overage?: 'deny' | 'allow';
  overage_used?: number;
  sources: EntitlementSource[];
}

export interface CustomerEntitlements {
  customer_id: string;
  version: number;
  evaluated_at: string;
  entitlements: CustomerEntitlement[];
}

export interface UsageEvent {
  customer_id: string;
  feature: string;
  value?: number;
  /** `unique` features only (required there): the distinct thing counted, e.g. a user id. */
  member?: string | number;
  idempotency_key: string;
  timestamp?: string;
}

export type UsageRefusalReason =
  | 'limit_exceeded'
  | 'not_in_plan'
  | 'no_subscription'
  | 'subscription_inactive'
  | 'trial_expired'
  | 'past_due_grace_ended'
  | 'condition_failed';

export interface UsageResult {
  accepted: boolean;
  reason?: UsageRefusalReason;
  used: number;
  limit: number | null;
  remaining: number | null;
  resets_at: string | null;
  period_start: string;
  overage: number;
  credit_used: number;
}

export interface ReservationRequest {
  customer_id: string;
  feature: string;
  amount: number;
  ttl_seconds: number;
}

export interface Reservation {
  id: string;
  customer_id: string;
  feature: string;
  amount: number;
  committed_amount: number | null;
  status: 'held' | 'committed' | 'released' | 'expired';
  period_start: string;
  resets_at: string | null;
  expires_at: string;
  created_at: string;
  settled_at: string | null;
  /** Where the customer stands after this call. */
  usage?: UsageResult;
}

export interface TokenResult {
  token: string;
  expires_at: string;
}

/** A metered entry of a token's `ent` claim. */
export interface TokenQuota {
  limit: number | null;
  remaining: number | null;
  resets_at: string | null;
}

/** The claims of an entitlements token (API contract, section Tokens). */
export interface TokenClaims {
  iss: string;
  sub: string;
  aud: string;
  iat: number;
  exp: number;
  ver: number;
  ent: Record<string, unknown>;
}

export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  code?: string;
  request_id?: string;
  errors?: { path: string; message: string }[];
}

/** Where an answer came from. */
export type DecisionSource = 'server' | 'snapshot' | 'token' | 'fallback';

/**
 * A check answer. `stale: true` marks an answer made without Tessera (an expired snapshot or
 * the configured fail-open/fail-closed fallback); `reason` is then `unreachable` for a fallback.
 */
export interface Decision extends Omit<CheckResult, 'reason' | 'version' | 'sources'> {
  reason: CheckReason | 'unreachable';
  version: number | null;
  sources: EntitlementSource[];
  source: DecisionSource;
  stale: boolean;
}
