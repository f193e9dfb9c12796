import { type Ctx, reader, requireScope, withTransaction } from '../../platform/context.ts';
import type { Db, Tx } from '../../platform/db.ts';
import { type FieldError, NotFound, Unprocessable } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { loadFeatures } from '../catalog/repo.ts';
import {
  type ChangeKind,
  type CreatePolicyInput,
  GROUP_PREFIX,
  type PolicyConditions,
  type PolicyResource,
  type Stage,
} from './schema.ts';

interface PolicyRow {
  id: string;
  name: string;
  kinds: string[];
  features: string[] | null;
  auto_approve: boolean;
  stages: Array<Record<string, unknown>>;
  conditions: Record<string, unknown> | null;
  created_at: Date;
}

function toPolicy(row: PolicyRow): PolicyResource {
  return {
    id: row.id,
    name: row.name,
    kinds: row.kinds as ChangeKind[],
    features: row.features,
    auto_approve: row.auto_approve,
    stages: row.stages as Stage[],
    conditions: row.conditions as PolicyConditions | null,
    created_at: row.created_at.toISOString(),
  };
}

/**
 * What a policy names must exist: each of `features` is a feature of the environment (or, when the
 * policy governs add-on requests, an add-on plan's key), and each `group:<key>` approver a group.
 * 422 `invalid_policy` naming each field that does not.
 */
async function validateReferences(ctx: Ctx, input: CreatePolicyInput): Promise<void> {
  const db = reader(ctx);
  const errors: FieldError[] = [];
  if (input.features) {
    const features = await loadFeatures(db, ctx.environment);
    // Add-on requests match on an add-on plan's key, trial extensions on any plan's key.
    const anyPlan = input.kinds.includes('trial_extension');
    const byPlan = anyPlan || input.kinds.includes('addon');
    let plans = db
      .selectFrom('plans')
      .select('key')
      .where('environment', '=', ctx.environment)
      .where('key', 'in', input.features);
    if (!anyPlan) plans = plans.where('addon', '=', true);
    const planKeys = byPlan ? new Set((await plans.execute()).map((p) => p.key)) : new Set<string>();
    input.features.forEach((key, i) => {
      if (!features.has(key) && !planKeys.has(key))
        errors.push({
          path: `features.${i}`,
          message: byPlan
            ? `'${key}' is neither a feature nor a plan this policy can govern`
            : `unknown feature '${key}'`,
        });
    });
  }
  const refs: Array<{ path: string; key: string }> = [];
  (input.stages ?? []).forEach((stage, i) => {
    for (const field of ['approvers', 'escalate_to'] as const)
      (stage[field] ?? []).forEach((a, j) => {
        if (a.startsWith(GROUP_PREFIX))
          refs.push({ path: `stages.${i}.${field}.${j}`, key: a.slice(GROUP_PREFIX.length) });
      });
  });
  if (refs.length > 0) {
    const known = new Set(
      (
        await db
          .selectFrom('actor_groups')
          .select('key')
          .where('environment', '=', ctx.environment)
          .where(
            'key',
            'in',
            refs.map((r) => r.key),
          )
          .execute()
      ).map((g) => g.key),
    );
    for (const ref of refs)
      if (!known.has(ref.key)) errors.push({ path: ref.path, message: `unknown actor group '${ref.key}'` });
  }
  if (errors.length > 0)
    throw new Unprocessable(
      'invalid_policy',
      'The policy names features or groups that do not exist',
      errors,
    );
}

/** Policies never change once made, so a pending request is always judged by the rules it was filed under. */
export async function createApprovalPolicy(ctx: Ctx, input: CreatePolicyInput): Promise<PolicyResource> {
  requireScope(ctx, 'admin');
  const stages: Stage[] = (input.stages ?? []).map((s) => ({
    approvers: s.approvers,
    timeout_hours: s.timeout_hours ?? null,
    on_timeout: s.on_timeout ?? 'deny',
    escalate_to: s.escalate_to ?? null,
  }));
  return withTransaction(ctx, async (t) => {
    await validateReferences(t, input);
    const row = await t.tx
      .insertInto('approval_policies')
      .values({
        id: newId('apol', t.now.getTime()),
        environment: ctx.environment,
        name: input.name,
        kinds: JSON.stringify(input.kinds),
        features: input.features ? JSON.stringify(input.features) : null,
        auto_approve: input.auto_approve ?? false,
        stages: JSON.stringify(stages),
        conditions: input.conditions ? JSON.stringify(input.conditions) : null,
        created_at: t.now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const policy = toPolicy(row);
    t.audit({
      action: 'approval_policy.created',
      target: { type: 'approval_policy', id: row.id },
      after: policy,
    });
    return policy;
  });
}

export async function listApprovalPolicies(ctx: Ctx): Promise<PolicyResource[]> {
  requireScope(ctx, 'admin');
  const rows = await reader(ctx)
    .selectFrom('approval_policies')
    .selectAll()
    .where('environment', '=', ctx.environment)
    .orderBy('seq')
    .execute();
  return rows.map(toPolicy);
}

export async function getApprovalPolicy(
  db: Db | Tx,
  environment: string,
  id: string,
): Promise<PolicyResource> {
  const row = await db
    .selectFrom('approval_policies')
    .selectAll()
    .where('environment', '=', environment)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) throw new NotFound('approval_policy', id);
  return toPolicy(row);
}

/** What a request is measured by, for policy conditions (null: not measurable for this change). */
export interface RequestFacts {
  increasePercent: number | null;
  amount: number | null;
  attributes: Record<string, string | number | boolean>;
}

export function meetsConditions(conditions: PolicyConditions | null, facts: RequestFacts): boolean {
  if (!conditions) return true;
  const { min_increase_percent: minIncrease, min_amount: minAmount, customer_attributes: attrs } = conditions;
  if (minIncrease !== undefined && (facts.increasePercent === null || facts.increasePercent < minIncrease))
    return false;
  if (minAmount !== undefined && (facts.amount === null || facts.amount < minAmount)) return false;
  for (const [key, value] of Object.entries(attrs ?? {})) if (facts.attributes[key] !== value) return false;
  return true;
}

/** The oldest policy governing this kind of change to this feature (or plan) that the request meets, or null. */
export async function governingPolicy(
  db: Db | Tx,
  environment: string,
  kind: ChangeKind,
  subject: string,
  facts: RequestFacts,
): Promise<PolicyResource | null> {
  const rows = await db
    .selectFrom('approval_policies')
    .selectAll()
    .where('environment', '=', environment)
    .orderBy('seq')
    .execute();
  const row = rows.find(
    (r) =>
      r.kinds.includes(kind) &&
      (r.features === null || r.features.includes(subject)) &&
      meetsConditions(r.conditions as PolicyConditions | null, facts),
  );
  return row ? toPolicy(row) : null;
}
