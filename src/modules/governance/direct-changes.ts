import { type Ctx, reader } from '../../platform/context.ts';
import { createGrant } from '../overrides/grant-service.ts';
import { createOverride } from '../overrides/override-service.ts';
import type { CreateGrantInput, CreateOverrideInput } from '../overrides/schema.ts';
import { changeSubscription } from '../subscriptions/commands.ts';
import { findSubscription } from '../subscriptions/repo.ts';
import type {
  ChangeSubscriptionInput,
  CreateSubscriptionInput,
  SubscriptionResource,
} from '../subscriptions/schema.ts';
import { createSubscription } from '../subscriptions/service.ts';
import { requestInsteadOfChange } from './access-requests.ts';
import type { AccessRequestResource } from './request-schema.ts';
import type { ChangeKind } from './schema.ts';
import { type GuardOptions, guardHoldings, SodApprovalRequired } from './sod-guard.ts';

/**
 * The direct routes' changes to what a customer holds (overrides, grants, subscriptions), under
 * the environment's SoD rules. A change that breaks a `deny` rule answers 409 `sod_conflict`; one
 * that breaks a `require_approval` rule is not made but filed as an access request of `kind`
 * (the route answers 202 with it); a change no request kind can carry (a base plan, a plan
 * change) answers 409 `sod_conflict` instead, as does one no approval policy governs.
 */
export type DirectOutcome<T> = { made: T } | { request: AccessRequestResource };

async function direct<T>(
  ctx: Ctx,
  target: { customer_id: string; kind: ChangeKind | null; change: Record<string, unknown> },
  run: (ctx: Ctx) => Promise<T>,
  options: GuardOptions,
): Promise<DirectOutcome<T>> {
  try {
    return { made: await guardHoldings(ctx, target.customer_id, run, options) };
  } catch (err) {
    if (!(err instanceof SodApprovalRequired) || target.kind === null) throw err;
    const kind = target.kind;
    return { request: await requestInsteadOfChange(ctx, { ...target, kind }, err.rule, err) };
  }
}

const at = (iso: string | undefined) => (iso ? new Date(iso) : null);

export function createOverrideDirect(ctx: Ctx, customerId: string, input: CreateOverrideInput) {
  return direct(
    ctx,
    { customer_id: customerId, kind: 'override', change: input },
    (c) => createOverride(c, customerId, input),
    { alsoAt: [at(input.starts_at)] },
  );
}

export function createGrantDirect(ctx: Ctx, customerId: string, input: CreateGrantInput) {
  return direct(
    ctx,
    { customer_id: customerId, kind: 'grant', change: input },
    (c) => createGrant(c, customerId, input),
    { alsoAt: [at(input.effective_at)] },
  );
}

/** A new add-on subscription may become an `addon` request; a base plan cannot. */
export async function createSubscriptionDirect(ctx: Ctx, customerId: string, input: CreateSubscriptionInput) {
  const plan = await reader(ctx)
    .selectFrom('plans')
    .select('addon')
    .where('environment', '=', ctx.environment)
    .where('key', '=', input.plan)
    .executeTakeFirst();
  return direct(
    ctx,
    { customer_id: customerId, kind: plan?.addon ? 'addon' : null, change: input },
    (c) => createSubscription(c, customerId, input),
    { alsoAt: [at(input.starts_at)] },
  );
}

/**
 * A plan change is checked now and, at `period_end`, when it takes effect. It has no request kind,
 * so a `require_approval` rule refuses it like a `deny` rule (409 `sod_conflict`).
 */
export async function changeSubscriptionDirect(
  ctx: Ctx,
  id: string,
  input: ChangeSubscriptionInput,
  requestKey: string | undefined,
): Promise<SubscriptionResource> {
  const sub = await findSubscription(reader(ctx), ctx.environment, id);
  // Unknown: the command answers 404 itself.
  if (!sub) return changeSubscription(ctx, id, input, requestKey);
  return guardHoldings(ctx, sub.customer_id, (c) => changeSubscription(c, id, input, requestKey), {
    alsoAt: [input.timing === 'period_end' ? sub.current_period_end : null],
  });
}

export const requestLocation = (request: AccessRequestResource) => ({
  location: `/v1/access-requests/${request.id}`,
});
