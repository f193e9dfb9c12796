import type { Ctx, TxCtx } from '../../platform/context.ts';
import { NotFound, ValidationFailed } from '../../platform/errors.ts';
import type { AccessRequestResource } from './request-schema.ts';
import type { PolicyResource } from './schema.ts';

export const HOUR_MS = 3_600_000;

export type Row = {
  id: string;
  customer_id: string;
  kind: string;
  change: Record<string, unknown>;
  justification: string;
  duration_hours: number | null;
  status: string;
  stage: number;
  stage_started_at: Date;
  stage_deadline_at: Date | null;
  policy_id: string;
  requested_by: string;
  decisions: Array<Record<string, unknown>>;
  applied: Record<string, unknown> | null;
  created_at: Date;
  decided_at: Date | null;
};

export function toResource(row: Row): AccessRequestResource {
  return {
    id: row.id,
    customer_id: row.customer_id,
    kind: row.kind as AccessRequestResource['kind'],
    change: row.change,
    justification: row.justification,
    duration_hours: row.duration_hours,
    status: row.status as AccessRequestResource['status'],
    stage: row.stage,
    stage_deadline_at: row.status === 'pending' ? (row.stage_deadline_at?.toISOString() ?? null) : null,
    policy_id: row.policy_id,
    requested_by: row.requested_by,
    decisions: row.decisions,
    ...(row.applied ? { applied: row.applied as AccessRequestResource['applied'] & object } : {}),
    created_at: row.created_at.toISOString(),
    decided_at: row.decided_at?.toISOString() ?? null,
  };
}

/** The person named by `Tessera-Actor`; required to request or decide. */
export function personOf(ctx: Ctx): string {
  const person = ctx.actor.person;
  if (person === undefined)
    throw new ValidationFailed([
      { path: 'Tessera-Actor', message: 'required: name the person making or deciding the request' },
    ]);
  return person;
}

/** Audits the step and emits the outbox event of the same name, in the step's transaction. */
export function record(t: TxCtx, action: string, row: Row, before?: Row): void {
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

export function escalated(row: Pick<Row, 'decisions' | 'stage'>): boolean {
  return row.decisions.some((d) => d.decision === 'escalated' && d.stage === row.stage);
}

/** When a stage that started at `startedAt` times out: null without a timeout, or once escalated. */
export function stageDeadline(
  policy: PolicyResource,
  stage: number,
  startedAt: Date,
  wasEscalated: boolean,
): Date | null {
  const hours = policy.stages[stage]?.timeout_hours ?? null;
  if (hours === null || wasEscalated) return null;
  return new Date(startedAt.getTime() + hours * HOUR_MS);
}

export async function lockRequest(t: TxCtx, id: string): Promise<Row> {
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
