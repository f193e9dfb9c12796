import {
  type Actor,
  type AppDeps,
  type Ctx,
  requireScope,
  systemContext,
  type TxCtx,
  withTransaction,
} from '../../platform/context.ts';
import { Conflict, type FieldError, Unprocessable, ValidationFailed } from '../../platform/errors.ts';
import { fieldErrors } from '../../platform/http.ts';
import { newId } from '../../platform/ids.ts';
import { lockLiveCustomer } from '../overrides/repo.ts';
import { CreateGrantBody, CreateOverrideBody } from '../overrides/schema.ts';
import { CreateSubscriptionBody } from '../subscriptions/schema.ts';
import { groupMembers } from './actor-groups.ts';
import { DecisionRefused } from './decision-refused.ts';
import { assertNoDutyConflict } from './duties.ts';
import { getApprovalPolicy, governingPolicy } from './policies.ts';
import { applyRequest } from './request-apply.ts';
import { requestFacts } from './request-facts.ts';
import {
  escalated,
  lockRequest,
  personOf,
  type Row,
  record,
  stageDeadline,
  toResource,
} from './request-rows.ts';
import {
  type AccessRequestResource,
  type CreateAccessRequestInput,
  TrialExtensionBody,
} from './request-schema.ts';
import { type ChangeKind, GROUP_PREFIX, type PolicyResource, type Stage } from './schema.ts';
import { type TrialExtensionChange, trialToExtend } from './trial-extension.ts';

export { DecisionRefused } from './decision-refused.ts';
export { getAccessRequest, listAccessRequests } from './request-list.ts';

/** Checks `change` against the direct route's body, so a request that is approved later cannot fail on its shape. */
function validateChange(input: CreateAccessRequestInput): { subject: string } {
  const errors: FieldError[] = [];
  const schema = {
    override: CreateOverrideBody,
    grant: CreateGrantBody,
    addon: CreateSubscriptionBody,
    trial_extension: TrialExtensionBody,
  }[input.kind];
  const parsed = schema.safeParse(input.change);
  if (!parsed.success) errors.push(...fieldErrors(parsed.error.issues, 'change'));
  if (input.kind === 'addon' || input.kind === 'trial_extension') {
    if (input.duration_hours !== undefined)
      errors.push({
        path: 'duration_hours',
        message: `not for ${input.kind} requests (there is nothing to end)`,
      });
  } else if (input.duration_hours !== undefined && input.change.expires_at !== undefined)
    errors.push({ path: 'change.expires_at', message: 'give either duration_hours or change.expires_at' });
  if (errors.length > 0) throw new ValidationFailed(errors);
  // A trial extension's subject (its plan) is read with the subscription, in the transaction.
  return { subject: String(input.kind === 'addon' ? input.change.plan : input.change.feature) };
}

/** An add-on request must name an add-on plan of the environment. */
async function assertAddonPlan(t: TxCtx, planKey: string): Promise<void> {
  const plan = await t.tx
    .selectFrom('plans')
    .select(['addon', 'archived_at'])
    .where('environment', '=', t.environment)
    .where('key', '=', planKey)
    .executeTakeFirst();
  if (!plan || plan.archived_at || !plan.addon)
    throw new Unprocessable('invalid_change', `'${planKey}' is not an add-on plan`, [
      {
        path: 'change.plan',
        message: !plan || plan.archived_at ? 'no such plan' : 'a base plan; add-on requests take an add-on',
      },
    ]);
}

export async function createAccessRequest(
  ctx: Ctx,
  input: CreateAccessRequestInput,
): Promise<AccessRequestResource> {
  requireScope(ctx, 'admin');
  return fileRequest(ctx, input, personOf(ctx), null);
}

/**
 * Files a request (in `ctx`'s transaction, or its own): the oldest matching policy that the
 * request meets governs it; an auto-approving policy applies it at once. `onNoPolicy` is thrown
 * instead of 422 `no_policy` when given (a change held back by an SoD rule answers 409).
 */
async function fileRequest(
  ctx: Ctx,
  input: CreateAccessRequestInput,
  requestedBy: string,
  onNoPolicy: Error | null,
): Promise<AccessRequestResource> {
  let { subject } = validateChange(input);
  return withTransaction(ctx, async (t) => {
    await lockLiveCustomer(t.tx, ctx.environment, input.customer_id);
    if (input.kind === 'addon') await assertAddonPlan(t, subject);
    if (input.kind === 'trial_extension')
      subject = (await trialToExtend(t, input.customer_id, input.change as unknown as TrialExtensionChange))
        .planKey;
    const facts = await requestFacts(t, input.customer_id, input.kind, input.change);
    const policy = await governingPolicy(t.tx, ctx.environment, input.kind, subject, facts);
    if (!policy) {
      if (onNoPolicy) throw onNoPolicy;
      throw new Unprocessable(
        'no_policy',
        `No approval policy governs ${input.kind} changes to '${subject}'`,
        [{ path: 'kind', message: 'no approval policy matches this kind, feature and its conditions' }],
      );
    }
    const row = (await t.tx
      .insertInto('access_requests')
      .values({
        id: newId('areq', t.now.getTime()),
        environment: ctx.environment,
        customer_id: input.customer_id,
        kind: input.kind,
        change: JSON.stringify(input.change),
        justification: input.justification,
        duration_hours: input.duration_hours ?? null,
        status: 'pending',
        stage: 0,
        stage_started_at: t.now,
        stage_deadline_at: policy.auto_approve ? null : stageDeadline(policy, 0, t.now, false),
        policy_id: policy.id,
        requested_by: requestedBy,
        decisions: JSON.stringify([]),
        created_at: t.now,
      })
      .returningAll()
      .executeTakeFirstOrThrow()) as Row;
    record(t, 'access_request.created', row);
    if (!policy.auto_approve) return toResource(row);
    return toResource(
      await applyRequest(t, row, [...row.decisions, { decision: 'auto_approved', at: t.now.toISOString() }]),
    );
  });
}

/**
 * A direct change that a `require_approval` SoD rule held back, filed as an access request instead
 * (the caller answers 202 with it). The requester is the person named by `Tessera-Actor`, else the
 * API key (`api_key:<id>`). With no policy governing it, `refusal` (409 `sod_conflict`) is thrown.
 */
export function requestInsteadOfChange(
  ctx: Ctx,
  input: { customer_id: string; kind: ChangeKind; change: Record<string, unknown> },
  rule: { id: string; name: string },
  refusal: Error,
): Promise<AccessRequestResource> {
  const reason = typeof input.change.reason === 'string' ? `: ${input.change.reason}` : '';
  return fileRequest(
    ctx,
    {
      ...input,
      justification: `Held for approval by separation-of-duties rule '${rule.name}' (${rule.id})${reason}`,
    },
    ctx.actor.person ?? `api_key:${ctx.actor.id ?? ctx.actor.name}`,
    refusal,
  );
}

function currentApprovers(row: Row, stage: Stage): string[] {
  return escalated(row) ? (stage.escalate_to ?? []) : stage.approvers;
}

async function mayDecide(ctx: Ctx, approvers: string[], person: string): Promise<boolean> {
  if (approvers.includes(person)) return true;
  const groups = approvers.filter((a) => a.startsWith(GROUP_PREFIX)).map((a) => a.slice(GROUP_PREFIX.length));
  const members = await groupMembers(ctx, groups);
  return [...members.values()].some((m) => m.includes(person));
}

/**
 * A stage whose timeout has passed is settled first: denied (status `expired`), or handed once to
 * its `escalate_to` approvers with a fresh start time and no further timeout. Returns the row as it now stands.
 */
async function settleTimeout(t: TxCtx, row: Row, policy: PolicyResource): Promise<Row> {
  const stage = policy.stages[row.stage];
  if (row.status !== 'pending' || !stage || stage.timeout_hours === null || escalated(row)) return row;
  const deadline = stageDeadline(policy, row.stage, row.stage_started_at, false);
  if (deadline === null || t.now.getTime() < deadline.getTime()) return row;
  const at = t.now.toISOString();
  if (stage.on_timeout === 'escalate') {
    const updated = (await t.tx
      .updateTable('access_requests')
      .set({
        stage_started_at: t.now,
        stage_deadline_at: null,
        decisions: JSON.stringify([...row.decisions, { decision: 'escalated', stage: row.stage, at }]),
      })
      .where('id', '=', row.id)
      .returningAll()
      .executeTakeFirstOrThrow()) as Row;
    record(t, 'access_request.escalated', updated, row);
    return updated;
  }
  const updated = (await t.tx
    .updateTable('access_requests')
    .set({
      status: 'expired',
      decided_at: t.now,
      stage_deadline_at: null,
      decisions: JSON.stringify([...row.decisions, { decision: 'timed_out', stage: row.stage, at }]),
    })
    .where('id', '=', row.id)
    .returningAll()
    .executeTakeFirstOrThrow()) as Row;
  record(t, 'access_request.expired', updated, row);
  return updated;
}

export async function decideAccessRequest(
  ctx: Ctx,
  id: string,
  decision: 'approve' | 'deny',
  comment: string | undefined,
): Promise<AccessRequestResource> {
  requireScope(ctx, 'admin');
  const person = personOf(ctx);
  // A timed-out stage is settled and committed even when the decision itself is then refused.
  const settled = await withTransaction(ctx, async (t) => {
    const row = await lockRequest(t, id);
    return settleTimeout(t, row, await getApprovalPolicy(t.tx, ctx.environment, row.policy_id));
  });
  return withTransaction(ctx, async (t) => {
    const row = await lockRequest(t, id);
    if (row.status !== 'pending')
      throw new Conflict('request_decided', `Access request '${id}' is already ${settled.status}`);
    if (row.requested_by === person)
      throw new DecisionRefused('self_approval', 'The requester may not decide their own request');
    const policy = await getApprovalPolicy(t.tx, ctx.environment, row.policy_id);
    const stage = policy.stages[row.stage];
    if (!stage || !(await mayDecide(t, currentApprovers(row, stage), person)))
      throw new DecisionRefused(
        'not_an_approver',
        `'${person}' is not an approver of this request's current stage`,
      );
    if (decision === 'approve') await assertNoDutyConflict(t, row, person);
    const entry = {
      decision: decision === 'approve' ? 'approved' : 'denied',
      stage: row.stage,
      actor: person,
      ...(comment ? { comment } : {}),
      at: t.now.toISOString(),
    };
    const decisions = [...row.decisions, entry];
    if (decision === 'deny') {
      const denied = (await t.tx
        .updateTable('access_requests')
        .set({
          status: 'denied',
          decided_at: t.now,
          stage_deadline_at: null,
          decisions: JSON.stringify(decisions),
        })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow()) as Row;
      record(t, 'access_request.denied', denied, row);
      return toResource(denied);
    }
    if (row.stage + 1 >= policy.stages.length) {
      const approved = { ...row, decisions };
      record(t, 'access_request.approved', approved, row);
      return toResource(await applyRequest(t, row, decisions));
    }
    const next = (await t.tx
      .updateTable('access_requests')
      .set({
        stage: row.stage + 1,
        stage_started_at: t.now,
        stage_deadline_at: stageDeadline(policy, row.stage + 1, t.now, false),
        decisions: JSON.stringify(decisions),
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow()) as Row;
    record(t, 'access_request.approved', next, row);
    return toResource(next);
  });
}

/** How many timed-out requests one scheduler step settles at most; the next run takes the rest. */
export const TIMEOUT_BATCH = 200;

/**
 * The scheduler's step: settles pending requests, in every environment, whose stage deadline has
 * passed by the deps' clock: read through the deadline index, at most `batch` a run, oldest
 * deadline first. Each request is settled in its own transaction, as `actor`.
 */
export async function settleTimedOutRequests(
  deps: AppDeps,
  actor: Actor,
  batch = TIMEOUT_BATCH,
): Promise<number> {
  const due = await deps.db
    .selectFrom('access_requests')
    .select(['environment', 'id', 'policy_id'])
    .where('status', '=', 'pending')
    .where('stage_deadline_at', 'is not', null)
    .where('stage_deadline_at', '<=', deps.clock.now())
    .orderBy('stage_deadline_at')
    .limit(batch)
    .execute();
  let settled = 0;
  for (const { environment, id, policy_id } of due) {
    const changed = await withTransaction(systemContext(deps, environment, actor), async (t) => {
      const row = await lockRequest(t, id);
      const after = await settleTimeout(t, row, await getApprovalPolicy(t.tx, environment, policy_id));
      return after !== row;
    });
    if (changed) settled += 1;
  }
  return settled;
}
