/**
 * The output of resolution (resolve.ts) and the input of decisions (decide.ts).
 *
 * Resolution happens once per customer snapshot and `now`; it cannot see a check's `context`, so
 * every entitlement keeps its contributing layers, each with its condition, in precedence order.
 * `decide` evaluates the conditions and picks the layers that apply.
 */
import type { GrantBalances } from './burn-down.ts';
import type { Period } from './periods.ts';
import type {
  CustomerAttributes,
  DecisionReason,
  EntitlementSource,
  Feature,
  JsonValue,
  OverageMode,
  ResetInterval,
} from './types.ts';

/**
 * What the usage counters say about one metered feature in the period resolution computed.
 * Until metering lands, callers pass `() => ({ used: 0 })`.
 */
export interface UsageReading {
  /** Everything used in the period, whichever of plan limit, credit or overage paid for it. */
  used: number;
  /**
   * Credit drawn so far from this feature's grants that are still effective now. Resolution turns
   * it into per-grant balances by drawing it from those grants in burn-down order. 0 when absent.
   */
  creditUsed?: number;
  /** Exact per-grant balances, when metering keeps a burn-down itself; wins over `creditUsed`. */
  grantBalances?: Readonly<Record<string, number>>;
}

export type UsageReader = (feature: string, period: Period) => UsageReading;

/** Why a feature that no layer grants is denied; `not_in_plan` when the customer has full access. */
export type DenyReason = Extract<
  DecisionReason,
  | 'not_in_plan'
  | 'no_subscription'
  | 'subscription_inactive'
  | 'trial_expired'
  | 'past_due_grace_ended'
  | 'unknown_customer'
>;

/**
 * One contribution to an entitlement. Source ids: the subscription id for `plan` and `addon`
 * (`fallback:<planKey>@v<version>` for the environment's fallback plan, which has no
 * subscription), the override id for `override`, the grant id for `grant`.
 */
interface LayerBase {
  source: EntitlementSource;
  /** CEL condition; null when unconditional. */
  condition: string | null;
}
export interface BooleanLayer extends LayerBase {
  enabled: boolean;
}
export interface ConfigLayer extends LayerBase {
  value: JsonValue;
}
export interface MeteredLayer extends LayerBase {
  /** Already multiplied by the subscription's quantity for per-seat entries; null is unlimited. */
  limit: number | null;
}

/**
 * Layers are in precedence order, highest first: overrides (newest first), then add-ons (latest
 * started first), then the plan. For metered features an override's limit replaces the others;
 * add-on and plan limits add up.
 */
export type ResolvedEntitlement =
  | { type: 'boolean'; feature: string; layers: BooleanLayer[] }
  | { type: 'config'; feature: string; layers: ConfigLayer[] }
  | ResolvedMetered;

export interface ResolvedMetered {
  type: 'metered';
  feature: string;
  layers: MeteredLayer[];
  /** From the plan's entry, else the first add-on's; `none`/`deny` when only overrides grant it. */
  reset: ResetInterval;
  overage: OverageMode;
  notifyAtPercent: number[];
  /** The usage period containing `now`; `used` was read for it. */
  period: Period;
  /** End of `period`; null for `reset: none`. */
  resetsAt: Date | null;
  used: number;
  credit: {
    /** Remaining credit of the grants effective now. */
    available: number;
    /** Credit drawn from them so far (see UsageReading.creditUsed). */
    used: number;
    /** Grants effective now that still have credit, in burn-down order. */
    sources: EntitlementSource[];
    /** Remaining credit per grant id (see burn-down.ts: a grant missing from it is untouched). */
    balances: GrantBalances;
  };
}

export interface ResolvedEntitlements {
  customerId: string;
  /** false: the customer is unknown and every decision is `unknown_customer`. */
  exists: boolean;
  version: number;
  /** The `now` this was resolved at (a memoised resolution keeps the first one). */
  evaluatedAt: Date;
  attributes: CustomerAttributes;
  denyReason: DenyReason;
  /** The whole catalog, archived features included: anything else is `unknown_feature`. */
  features: ReadonlyMap<string, Feature>;
  /** Features at least one plan, add-on or override mentions, keyed by feature key. */
  entitlements: ReadonlyMap<string, ResolvedEntitlement>;
}
