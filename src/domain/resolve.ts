/**
 * Entitlement resolution: from one customer snapshot and `now` to the layers that may grant each
 * feature. Precedence is override > add-on > plan; conditions are left for `decide`, which alone
 * sees the check's context. Pure: usage comes in through `usage`.
 */
import {
  availableCredit,
  balanceOf,
  burnDown,
  type GrantBalances,
  isGrantEffective,
  orderGrants,
} from './burn-down.ts';
import { type Holding, holdingsOf } from './holdings.ts';
import { type Period, periodContaining } from './periods.ts';
import type {
  BooleanLayer,
  ConfigLayer,
  DenyReason,
  MeteredLayer,
  ResolvedEntitlement,
  ResolvedEntitlements,
  ResolvedMetered,
  UsageReader,
  UsageReading,
} from './resolved.ts';
import type {
  CreditGrant,
  CustomerSnapshot,
  EntitlementSource,
  Feature,
  MeteredEntitlement,
  Override,
  PlanEntitlement,
  ResetInterval,
  Subscription,
} from './types.ts';

export type * from './resolved.ts';

/**
 * `only`: resolve just that feature (a single decision needs no more; the others are left out of
 * `entitlements`, which is therefore partial).
 */
export function resolveEntitlements(
  snapshot: CustomerSnapshot,
  now: Date,
  usage: UsageReader,
  only?: string,
): ResolvedEntitlements {
  if (!snapshot.exists) return resolution(snapshot, now, 'unknown_customer', new Map());

  const holdings = holdingsOf(snapshot, now);
  // Highest precedence first: later add-ons outrank earlier ones (config takes the last add-on).
  const ranked: Holding[] = [...holdings.addons].reverse();
  if (holdings.plan !== null) ranked.push(holdings.plan);
  const overrides = activeOverrides(snapshot.overrides, now);

  const mentioned = new Set<string>(overrides.map((o) => o.feature));
  for (const holding of ranked) for (const entry of holding.plan.entitlements) mentioned.add(entry.feature);
  if (only !== undefined) {
    const wanted = mentioned.has(only);
    mentioned.clear();
    if (wanted) mentioned.add(only);
  }

  const entitlements = new Map<string, ResolvedEntitlement>();
  for (const key of mentioned) {
    // Archived features stay resolvable; features missing from the catalog do not.
    const feature = snapshot.features.get(key);
    if (feature === undefined) continue;
    const layered = { feature, ranked, overrides: overrides.filter((o) => o.feature === key) };
    const entitlement = resolveFeature(layered, {
      snapshot,
      now,
      usage,
      baseSubscription: holdings.baseSubscription,
    });
    if (entitlement.layers.length > 0) entitlements.set(key, entitlement);
  }
  return resolution(snapshot, now, holdings.denyReason, entitlements);
}

/*
 * Objects on the decision path are written as whole literals, never as a spread plus more fields
 * (`{ ...x, y }`): on Node 20's V8 such a spread gives every object a hidden class of its own, which
 * costs about 200 bytes per object in the decision memo and makes each property read megamorphic.
 */
function resolution(
  snapshot: CustomerSnapshot,
  evaluatedAt: Date,
  denyReason: DenyReason,
  entitlements: ReadonlyMap<string, ResolvedEntitlement>,
): ResolvedEntitlements {
  return {
    customerId: snapshot.customerId,
    exists: snapshot.exists,
    version: snapshot.version,
    evaluatedAt,
    attributes: snapshot.attributes,
    denyReason,
    features: snapshot.features,
    entitlements,
  };
}

/**
 * `base` resolved with any usage at an instant whose resolution is the same as at `now` (before the
 * snapshot's next time boundary and inside the same usage periods: the decision engine's memo
 * window), with each metered entitlement's usage and credit read afresh. Equal to
 * `resolveEntitlements(snapshot, now, usage, only)` at a fraction of the cost: the layers, periods
 * and policy are reused, only the numbers are new.
 */
export function withUsage(
  base: ResolvedEntitlements,
  snapshot: CustomerSnapshot,
  now: Date,
  usage: UsageReader,
): ResolvedEntitlements {
  const entitlements = new Map<string, ResolvedEntitlement>();
  for (const [key, entitlement] of base.entitlements) {
    if (entitlement.type !== 'metered') {
      entitlements.set(key, entitlement);
      continue;
    }
    const reading = usage(key, entitlement.period);
    const grants =
      snapshot.grants.length === 0 ? NO_GRANTS : snapshot.grants.filter((g) => g.feature === key);
    entitlements.set(key, {
      type: 'metered',
      feature: entitlement.feature,
      layers: entitlement.layers,
      reset: entitlement.reset,
      overage: entitlement.overage,
      notifyAtPercent: entitlement.notifyAtPercent,
      period: entitlement.period,
      resetsAt: entitlement.resetsAt,
      used: reading.used,
      credit: creditOf(grants, reading, now),
    });
  }
  return {
    customerId: base.customerId,
    exists: base.exists,
    version: base.version,
    evaluatedAt: now,
    attributes: base.attributes,
    denyReason: base.denyReason,
    features: base.features,
    entitlements,
  };
}

interface Layered {
  feature: Feature;
  /** Add-ons (latest first), then the plan. */
  ranked: Holding[];
  /** This feature's active overrides, newest first. */
  overrides: Override[];
}

interface MeteringInputs {
  snapshot: CustomerSnapshot;
  now: Date;
  usage: UsageReader;
  baseSubscription: Subscription | null;
}

function resolveFeature(layered: Layered, inputs: MeteringInputs): ResolvedEntitlement {
  const { feature } = layered;
  const entries = entriesOf(layered);
  // Entries and overrides whose type disagrees with the catalog are ignored: validation on save
  // prevents them, and a stale one must not crash a decision.
  switch (feature.type) {
    case 'boolean': {
      const layers: BooleanLayer[] = [];
      for (const o of layered.overrides) {
        if (o.effect.type === 'boolean')
          layers.push({ source: overrideSource(o), condition: o.condition, enabled: o.effect.enabled });
      }
      for (const { holding, entry } of entries) {
        if (entry.type === 'boolean')
          layers.push({ source: holding.source, condition: entry.condition, enabled: entry.enabled });
      }
      return { type: 'boolean', feature: feature.key, layers };
    }
    case 'config': {
      const layers: ConfigLayer[] = [];
      for (const o of layered.overrides) {
        if (o.effect.type === 'config')
          layers.push({ source: overrideSource(o), condition: o.condition, value: o.effect.value });
      }
      for (const { holding, entry } of entries) {
        if (entry.type === 'config')
          layers.push({ source: holding.source, condition: entry.condition, value: entry.value });
      }
      return { type: 'config', feature: feature.key, layers };
    }
    case 'metered':
      return resolveMetered(feature.key, layered.overrides, entries, inputs);
  }
}

type Entry<E extends PlanEntitlement = PlanEntitlement> = { holding: Holding; entry: E };

function resolveMetered(
  key: string,
  overrides: Override[],
  entries: Entry[],
  { snapshot, now, usage, baseSubscription }: MeteringInputs,
): ResolvedMetered {
  const layers: MeteredLayer[] = [];
  for (const o of overrides) {
    if (o.effect.type === 'metered')
      layers.push({ source: overrideSource(o), condition: o.condition, limit: o.effect.limit });
  }
  const metered = entries.filter((e): e is Entry<MeteredEntitlement> => e.entry.type === 'metered');
  for (const { holding, entry } of metered) {
    const limit = entry.limit !== null && entry.perSeat ? entry.limit * holding.quantity : entry.limit;
    layers.push({ source: holding.source, condition: entry.condition, limit });
  }
  // The plan defines how the feature is counted; an add-on only when the plan does not mention it.
  const defining =
    metered.find((e) => e.holding.source.kind === 'plan') ??
    metered.filter((e) => e.holding.source.kind === 'addon').at(-1);
  const reset = defining?.entry.reset ?? 'none';
  const anchor = baseSubscription ?? defining?.holding.subscription ?? null;
  const period = usagePeriod(reset, now, anchor);
  const reading = usage(key, period);
  const grants = snapshot.grants.filter((g) => g.feature === key);
  return {
    type: 'metered',
    feature: key,
    layers,
    reset,
    overage: defining?.entry.overage ?? 'deny',
    notifyAtPercent: defining?.entry.notifyAtPercent ?? [],
    period,
    resetsAt: reset === 'none' ? null : period.end,
    used: reading.used,
    credit: creditOf(grants, reading, now),
  };
}

/** `billing_period` counts from the base subscription's anchor; with no subscription, calendar months. */
function usagePeriod(reset: ResetInterval, now: Date, anchor: Subscription | null): Period {
  if (reset !== 'billing_period') return periodContaining(reset, now, null);
  if (anchor === null) return periodContaining('month', now, null);
  return periodContaining('billing_period', now, anchor.billingAnchor);
}

/**
 * Credit available now. With exact per-grant balances from metering, those are used. Otherwise
 * `creditUsed` is drawn at `now` from the grants effective now in burn-down order: exact while
 * credit is only ever drawn from grants that are still effective, an overestimate of what is left
 * once a grant that was drawn from has expired.
 */
/** Most customers hold no grants: one shared empty list instead of a filtered copy per check. */
const NO_GRANTS: readonly CreditGrant[] = Object.freeze([]);
const NO_BALANCES: GrantBalances = Object.freeze({});

function creditOf(
  grants: readonly CreditGrant[],
  reading: UsageReading,
  now: Date,
): ResolvedMetered['credit'] {
  // What the general case below computes for no grants, without its allocations (a check of a
  // metered feature runs this every time).
  if (grants.length === 0) {
    return { available: 0, used: reading.creditUsed ?? 0, sources: [], balances: NO_BALANCES };
  }
  const balances =
    reading.grantBalances ?? burnDown(grants, [{ at: now, amount: reading.creditUsed ?? 0 }], now).balances;
  const effective = orderGrants(grants).filter((g) => isGrantEffective(g, now));
  const used =
    reading.creditUsed ??
    effective.reduce((sum, g) => sum + Math.max(0, g.amount - balanceOf(g, balances)), 0);
  return {
    available: availableCredit(effective, balances, now),
    used,
    balances,
    sources: effective
      .filter((g) => balanceOf(g, balances) > 0)
      .map((g): EntitlementSource => {
        const source: EntitlementSource = { kind: 'grant', id: g.id };
        if (g.expiresAt !== null) source.ends_at = g.expiresAt.toISOString();
        return source;
      }),
  };
}

/** Active: started, not yet expired (expiresAt is exclusive) and not ended early. */
function activeOverrides(overrides: Override[], now: Date): Override[] {
  const t = now.getTime();
  return overrides
    .filter(
      (o) =>
        o.startsAt.getTime() <= t &&
        (o.expiresAt === null || t < o.expiresAt.getTime()) &&
        (o.endedAt === null || o.endedAt.getTime() > t),
    )
    .sort((a, b) => b.startsAt.getTime() - a.startsAt.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

function entriesOf({ feature, ranked }: Layered): Entry[] {
  return ranked.flatMap((holding) =>
    holding.plan.entitlements
      .filter((entry) => entry.feature === feature.key)
      .map((entry) => ({ holding, entry })),
  );
}

function overrideSource(o: Override): EntitlementSource {
  const source: EntitlementSource = { kind: 'override', id: o.id };
  if (o.expiresAt !== null) source.ends_at = o.expiresAt.toISOString();
  return source;
}
