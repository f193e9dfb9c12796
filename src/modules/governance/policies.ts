import { type Ctx, reader, requireScope, withTransaction } from '../../platform/context.ts';
import type { Db, Tx } from '../../platform/db.ts';
import { NotFound } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import type { ChangeKind, CreatePolicyInput, PolicyResource, Stage } from './schema.ts';

interface PolicyRow {
  id: string;
  name: string;
  kinds: string[];
  features: string[] | null;
  auto_approve: boolean;
  stages: Array<Record<string, unknown>>;
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
    created_at: row.created_at.toISOString(),
  };
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

/** The oldest policy governing this kind of change to this feature (or plan), or null. */
export async function governingPolicy(
  db: Db | Tx,
  environment: string,
  kind: ChangeKind,
  subject: string,
): Promise<PolicyResource | null> {
  const rows = await db
    .selectFrom('approval_policies')
    .selectAll()
    .where('environment', '=', environment)
    .orderBy('seq')
    .execute();
  const row = rows.find(
    (r) => r.kinds.includes(kind) && (r.features === null || r.features.includes(subject)),
  );
  return row ? toPolicy(row) : null;
}
