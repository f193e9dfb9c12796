import {
  type Actor,
  type AppDeps,
  type Ctx,
  reader,
  requireScope,
  systemContext,
  type TxCtx,
  withTransaction,
} from '../../platform/context.ts';
import {
  AppError,
  Conflict,
  type FieldError,
  NotFound,
  Unprocessable,
  ValidationFailed,
} from '../../platform/errors.ts';
import { fieldErrors } from '../../platform/http.ts';
import { newId } from '../../platform/ids.ts';
import { createGrant } from '../overrides/grant-service.ts';
import { createOverride } from '../overrides/override-service.ts';
import { lockLiveCustomer } from '../overrides/repo.ts';
import { CreateGrantBody, CreateOverrideBody } from '../overrides/schema.ts';
import { groupMembers } from './actor-groups.ts';
import { getApprovalPolicy, governingPolicy } from './policies.ts';
import type { AccessRequestResource, CreateAccessRequestInput } from './request-schema.ts';
import { GROUP_PREFIX, type PolicyResource, type Stage } from './schema.ts';

/** 403 with a governance reason (`self_approval`, `not_an_approver`). */
export class DecisionRefused extends AppError {
  readonly status = 403;
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const HOUR_MS = 3_600_000;

type Row = {
  id: string;
  customer_id: string;
  kind: string;
  change: Record<string, unknown>;
  justification: string;
  duration_hours: number | null;
  status: string;
  stage: number;
  stage_started_at: Date;
  policy_id: string;
  requested_by: string;
  decisions: Array<Record<string, unknown>>;
  applied: Record<string, unknown> | null;
  created_at: Date;
  decided_at: Date | null;
};

function toResource(row: Row): AccessRequestResource {
  return {
    id: row.id,
    customer_id: row.customer_id,
    kind: row.kind as AccessRequestResource['kind'],
    change: row.change,
    justification: row.justification,
    duration_hours: row.duration_hours,
    status: row.status as AccessRequestResource['status'],
    stage: row.stage,
    policy_id: row.policy_id,
    requested_by: row.requested_by,
    decisions: row.decisions,
    ...(row.applied ? { applied: row.applied as AccessRequestResource['applied'] & object } : {}),
    created_at: row.created_at.toISOString(),
    decided_at: row.decided_at?.toISOString() ?? null,
  };
}

function personOf(ctx: Ctx): string {
  const person = ctx.actor.person;
  if (person === undefined)
    throw new ValidationFailed([
      { path: 'Tessera-Actor', message: 'required: name the person making or deciding the request' },
    ]);
  return person;
}

/** Checks `change` against the direct route's body, so a request that is approved later cannot fail on its shape. */
function validateChange(input: CreateAccessRequestInput): { subject: string } {
  const errors: FieldError[] = [];
  if (input.kind === 'addon') {
    throw new Unprocessable('unsupported_kind', 'Add-on requests are not supported yet', [
      { path: 'kind', message: 'use override or grant' },
    ]);
  }
  const schema = input.kind === 'override' ? CreateOverrideBody : CreateGrantBody;
  const parsed = schema.safeParse(input.change);
  if (!parsed.success) errors.push(...fieldErrors(parsed.error.issues, 'change'));
  if (input.duration_hours !== undefined && input.change.expires_at !== undefined)
    errors.push({ path: 'change.expires_at', message: 'give either duration_hours or change.expires_at' });
  if (errors.length > 0) throw new ValidationFailed(errors);
  return { subject: String(input.change.feature) };
}

export async function createAccessRequest(
  ctx: Ctx,
  input: CreateAccessRequestInput,
): Promise<AccessRequestResource> {
  requireScope(ctx, 'admin');
  const person = personOf(ctx);
  const { subject } = validateChange(input);
  return withTransaction(ctx, async (t) => {
    await lockLiveCustomer(t.tx, ctx.environment, input.customer_id);
    const policy = await governingPolicy(t.tx, ctx.environment, input.kind, subject);
    if (!policy)
      throw new Unprocessable(
        'no_policy',
        `No approval policy governs ${input.kind} changes to '${subject}'`,
        [{ path: 'kind', message: 'no approval policy matches this kind and feature' }],
      );
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
        policy_id: policy.id,
        requested_by: person,
        decisions: JSON.stringify([]),
        created_at: t.now,
      })
      .returningAll()
      .executeTakeFirstOrThrow()) as Row;
    record(t, 'access_request.created', row);
    if (!policy.auto_approve) return toResource(row);
    return toResource(
      await apply(t, row, [...row.decisions, { decision: 'auto_approved', at: t.now.toISOString() }]),
    );
  });
}

function record(t: TxCtx, action: string, row: Row, before?: Row): void {
  const after = toResource(row);
  t.audit({
    action,
    target: { type: 'access_request', id: row.id },
    customerId: row.customer_id,
    ...(before ? { before: toResource(before) } : {}),
    after,
  });
  t.emit({ topic: action, customerId: row.customer_id, payload: after });
}

/** Applies the change through the direct verb in this transaction, ending it after the requested duration. */
async function apply(t: TxCtx, row: Row, decisions: Array<Record<string, unknown>>): Promise<Row> {
  const expiresAt =
    row.duration_hours === null
      ? null
      : new Date(t.now.getTime() + row.duration_hours * HOUR_MS).toISOString();
  const timing = expiresAt ? { expires_at: expiresAt } : {};
  let applied: { kind: string; id: string; expires_at: string | null };
  if (row.kind === 'override') {
    const change = CreateOverrideBody.parse({ ...row.change, ...timing });
    const o = await createOverride(t, row.customer_id, change);
    applied = { kind: 'override', id: o.id, expires_at: o.expires_at };
  } else {
    const change = CreateGrantBody.parse({ ...row.change, ...timing });
    const g = await createGrant(t, row.customer_id, change);
    applied = { kind: 'grant', id: g.id, expires_at: g.expires_at };
  }
  const updated = (await t.tx
    .updateTable('access_requests')
    .set({
      status: 'applied',
      decisions: JSON.stringify(decisions),
      applied: JSON.stringify(applied),
      decided_at: t.now,
    })
    .where('id', '=', row.id)
    .returningAll()
    .executeTakeFirstOrThrow()) as Row;
  record(t, 'access_request.applied', updated, row);
  return updated;
}

function escalated(row: Row): boolean {
  return row.decisions.some((d) => d.decision === 'escalated' && d.stage === row.stage);
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

async function lockRequest(t: TxCtx, id: string): Promise<Row> {
  const row = await t.tx
    .selectFrom('access_requests')
    .selectAll()
    .where('environment', '=', t.environment)
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
  if (!row) throw new NotFound('access_request', id);
  return row as Row;
}

/**
 * A stage whose timeout has passed is settled first: denied (status `expired`), or handed once to
 * its `escalate_to` approvers with a fresh start time and no further timeout. Returns the row as it now stands.
 */
async function settleTimeout(t: TxCtx, row: Row, policy: PolicyResource): Promise<Row> {
  const stage = policy.stages[row.stage];
  if (row.status !== 'pending' || !stage || stage.timeout_hours === null || escalated(row)) return row;
  if (t.now.getTime() < row.stage_started_at.getTime() + stage.timeout_hours * HOUR_MS) return row;
  const at = t.now.toISOString();
  if (stage.on_timeout === 'escalate') {
    const updated = (await t.tx
      .updateTable('access_requests')
      .set({
        stage_started_at: t.now,
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
        .set({ status: 'denied', decided_at: t.now, decisions: JSON.stringify(decisions) })
        .where('id', '=', id)
        .returningAll()
        .executeTakeFirstOrThrow()) as Row;
      record(t, 'access_request.denied', denied, row);
      return toResource(denied);
    }
    if (row.stage + 1 >= policy.stages.length) {
      const approved = { ...row, decisions };
      record(t, 'access_request.approved', approved, row);
      return toResource(await apply(t, row, decisions));
    }
    const next = (await t.tx
      .updateTable('access_requests')
      .set({ stage: row.stage + 1, stage_started_at: t.now, decisions: JSON.stringify(decisions) })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow()) as Row;
    record(t, 'access_request.approved', next, row);
    return toResource(next);
  });
}

/**
 * The scheduler's step: settles every pending request, in every environment, whose stage timed out
 * by the deps' clock. Each request is settled in its own transaction, as `actor`.
 */
export async function settleTimedOutRequests(deps: AppDeps, actor: Actor): Promise<number> {
  const pending = await deps.db
    .selectFrom('access_requests')
    .select(['environment', 'id', 'policy_id'])
    .where('status', '=', 'pending')
    .execute();
  let settled = 0;
  for (const { environment, id, policy_id } of pending) {
    const changed = await withTransaction(systemContext(deps, environment, actor), async (t) => {
      const row = await lockRequest(t, id);
      const after = await settleTimeout(t, row, await getApprovalPolicy(t.tx, environment, policy_id));
      return after !== row;
    });
    if (changed) settled += 1;
  }
  return settled;
}

export async function getAccessRequest(ctx: Ctx, id: string): Promise<AccessRequestResource> {
  requireScope(ctx, 'admin');
  const row = await reader(ctx)
    .selectFrom('access_requests')
    .selectAll()
    .where('environment', '=', ctx.environment)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) throw new NotFound('access_request', id);
  return toResource(row as Row);
}

export async function listAccessRequests(ctx: Ctx, status?: string): Promise<AccessRequestResource[]> {
  requireScope(ctx, 'admin');
  let q = reader(ctx).selectFrom('access_requests').selectAll().where('environment', '=', ctx.environment);
  if (status !== undefined) q = q.where('status', '=', status);
  const rows = await q.orderBy('created_at').orderBy('id').limit(500).execute();
  return rows.map((r) => toResource(r as Row));
}
