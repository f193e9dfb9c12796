import type { ConditionContext } from '../../domain/conditions.ts';
import { decide, describeEntitlements } from '../../domain/decide.ts';
import { type Ctx, requireScope } from '../../platform/context.ts';
import type { CheckResult, EntitlementsResult } from './schema.ts';

export interface CheckInput {
  customer_id: string;
  feature: string;
  quantity?: number | undefined;
  context?: ConditionContext | undefined;
}

/** `POST /v1/check`: never a 404; an unknown customer or feature is an answer with a reason. */
export async function checkEntitlement(ctx: Ctx, input: CheckInput): Promise<CheckResult> {
  requireScope(ctx, 'check');
  const now = ctx.deps.clock.now();
  const resolved = await ctx.deps.decisions.resolve(ctx.environment, input.customer_id, now, input.feature);
  const decision = decide(resolved, input.feature, input.quantity ?? 1, input.context ?? {});
  ctx.deps.metrics.countDecision(decision.reason);
  return {
    allowed: decision.allowed,
    reason: decision.reason,
    customer_id: input.customer_id,
    feature: input.feature,
    ...(decision.type !== undefined ? { type: decision.type } : {}),
    ...(decision.value !== undefined ? { value: decision.value } : {}),
    ...(decision.limit !== undefined ? { limit: decision.limit } : {}),
    ...(decision.used !== undefined ? { used: decision.used } : {}),
    ...(decision.remaining !== undefined ? { remaining: decision.remaining } : {}),
    ...(decision.resetsAt ? { resets_at: decision.resetsAt.toISOString() } : {}),
    ...(decision.overage !== undefined && decision.overage > 0 ? { overage: decision.overage } : {}),
    sources: decision.sources,
    version: resolved.version,
  };
}

/** `GET /v1/customers/{id}/entitlements`: everything the customer holds, evaluated now. */
export async function listEntitlements(
  ctx: Ctx,
  customerId: string,
  context: ConditionContext = {},
): Promise<EntitlementsResult | null> {
  requireScope(ctx, 'check');
  const now = ctx.deps.clock.now();
  const resolved = await ctx.deps.decisions.resolve(ctx.environment, customerId, now);
  if (!resolved.exists) return null;
  return {
    customer_id: customerId,
    version: resolved.version,
    evaluated_at: resolved.evaluatedAt.toISOString(),
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
      ...(e.overageMode !== undefined ? { overage: e.overageMode, overage_used: e.overage ?? 0 } : {}),
      sources: e.sources,
    })),
  };
}
