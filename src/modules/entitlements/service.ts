import type { ConditionContext, ConditionRefusal } from '../../domain/conditions.ts';
import { type Decision, decide, describeEntitlements } from '../../domain/decide.ts';
import type { ResolvedEntitlements } from '../../domain/resolved.ts';
import { type Ctx, requireScope } from '../../platform/context.ts';
import type { CheckResult, EntitlementsResult } from './schema.ts';

export interface CheckInput {
  customer_id: string;
  feature: string;
  quantity?: number | undefined;
  context?: ConditionContext | undefined;
}

/**
 * Answers that depend on nothing but the resolution and the quantity (no condition to evaluate
 * against the context), per resolution object. A check's resolution is of one feature
 * (`resolve(..., only)`), memoised until the snapshot's next time boundary and dropped with the
 * snapshot, so its answer goes with it. A metered feature's resolution carries its usage: the
 * engine hands out the same object again only while the counter reads the same, so the answer is
 * kept for the default quantity of 1 alone, which is what most checks ask.
 */
const fixedAnswers = new WeakMap<ResolvedEntitlements, CheckResult>();

/** `POST /v1/check`: never a 404; an unknown customer or feature is an answer with a reason. */
export async function checkEntitlement(ctx: Ctx, input: CheckInput): Promise<CheckResult> {
  requireScope(ctx, 'check');
  const now = ctx.deps.clock.now();
  const resolved = await ctx.deps.services.decisions.resolve(
    ctx.environment,
    input.customer_id,
    now,
    input.feature,
  );
  const known = fixedAnswers.get(resolved);
  if (known !== undefined && known.feature === input.feature && fitsKnown(known, input.quantity)) {
    ctx.deps.metrics.countDecision(known.reason);
    return known;
  }
  const decision = decide(resolved, input.feature, input.quantity ?? 1, input.context ?? NO_CONTEXT);
  if (decision.refused !== undefined) logRefusal(ctx, input, decision.refused);
  ctx.deps.metrics.countDecision(decision.reason);
  const answer = checkResult(input, decision, resolved.version);
  if (isFixed(resolved, input.feature, input.quantity)) fixedAnswers.set(resolved, Object.freeze(answer));
  return answer;
}

const NO_CONTEXT: ConditionContext = Object.freeze({});

/**
 * A condition over its cost bound does not hold (the answer is condition_failed); say why, once a
 * minute per customer, feature and reason (a stored hostile condition meets every check).
 */
function logRefusal(ctx: Ctx, input: CheckInput, refused: ConditionRefusal): void {
  ctx.deps.services.decisions.warnings.warn(
    `${ctx.environment}\u0000${input.customer_id}\u0000${input.feature}\u0000${refused.reason}`,
    {
      customer_id: input.customer_id,
      feature: input.feature,
      condition: refused.expression,
      why: refused.reason,
    },
    'condition refused: it does not hold',
  );
}

/** A kept metered answer is for a quantity of 1; the others hold for any quantity. */
function fitsKnown(known: CheckResult, quantity: number | undefined): boolean {
  return known.type !== 'metered' || isOneUnit(quantity);
}

function isOneUnit(quantity: number | undefined): boolean {
  return quantity === undefined || quantity === 1;
}

/** Whether this answer can be kept for the resolution: it cannot vary with the check's context. */
function isFixed(resolved: ResolvedEntitlements, feature: string, quantity: number | undefined): boolean {
  const entitlement = resolved.entitlements.get(feature);
  if (entitlement === undefined) return true;
  if (entitlement.type === 'metered' && !isOneUnit(quantity)) return false;
  for (const layer of entitlement.layers) if (layer.condition !== null) return false;
  return true;
}

function checkResult(input: CheckInput, decision: Decision, version: number): CheckResult {
  // Built field by field, not with spreads (this runs on every check), in the documented order;
  // `sources` and `version` are set last, hence the cast.
  const out = {
    allowed: decision.allowed,
    reason: decision.reason,
    customer_id: input.customer_id,
    feature: input.feature,
  } as CheckResult;
  if (decision.type !== undefined) out.type = decision.type;
  if (decision.value !== undefined) out.value = decision.value;
  if (decision.limit !== undefined) out.limit = decision.limit;
  if (decision.used !== undefined) out.used = decision.used;
  if (decision.remaining !== undefined) out.remaining = decision.remaining;
  if (decision.resetsAt) out.resets_at = decision.resetsAt.toISOString();
  if (decision.overageUsed !== undefined && decision.overageUsed > 0) out.overage_used = decision.overageUsed;
  out.sources = decision.sources;
  out.version = version;
  return out;
}

/** `GET /v1/customers/{id}/entitlements`: everything the customer holds, evaluated now. */
export async function listEntitlements(
  ctx: Ctx,
  customerId: string,
  context: ConditionContext = {},
): Promise<EntitlementsResult | null> {
  requireScope(ctx, 'check');
  const now = ctx.deps.clock.now();
  const resolved = await ctx.deps.services.decisions.resolve(ctx.environment, customerId, now);
  if (!resolved.exists) return null;
  return {
    customer_id: customerId,
    version: resolved.version,
    evaluated_at: now.toISOString(),
    entitlements: describeEntitlements(resolved, resolved.attributes, context).map((e) => ({
      feature: e.feature,
      type: e.type,
      has_access: e.hasAccess,
      ...(e.enabled !== undefined ? { enabled: e.enabled } : {}),
      ...(e.value !== undefined ? { value: e.value } : {}),
      ...(e.limit !== undefined ? { limit: e.limit } : {}),
      ...(e.used !== undefined ? { used: e.used } : {}),
      ...(e.remaining !== undefined ? { remaining: e.remaining } : {}),
      ...(e.resetsAt ? { resets_at: e.resetsAt.toISOString() } : {}),
      ...(e.overageMode !== undefined ? { overage: e.overageMode, overage_used: e.overageUsed ?? 0 } : {}),
      sources: e.sources,
    })),
  };
}
