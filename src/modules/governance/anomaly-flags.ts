/**
 * Anomaly flags: findings of the anomaly scan (anomaly-scan.ts), one open flag per (customer, kind,
 * subject). A flag is closed as `resolved` (fixed: the scan may raise it again if it recurs) or
 * `dismissed` (accepted: the scan does not raise that finding again).
 */
import type { Selectable } from 'kysely';
import { type Ctx, reader, requireScope, type TxCtx, withTransaction } from '../../platform/context.ts';
import { Conflict, NotFound } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import { addFlaggedException } from './access-reviews.ts';
import type { Exception } from './review-items.ts';
import type { FlagKind, FlagResource } from './review-schema.ts';
import type { AnomalyFlagsTable } from './review-tables.ts';

type FlagRow = Selectable<AnomalyFlagsTable>;

export function toFlagResource(row: FlagRow): FlagResource {
  return {
    id: row.id,
    customer_id: row.customer_id,
    kind: row.kind as FlagKind,
    subject: row.subject,
    detail: row.detail,
    raised_at: row.raised_at.toISOString(),
    status: row.status as FlagResource['status'],
    closed_at: row.closed_at?.toISOString() ?? null,
    closed_by: row.closed_by,
    comment: row.comment,
  };
}

export interface Finding {
  customerId: string;
  kind: FlagKind;
  subject: string;
  detail: Record<string, unknown>;
  /** The override or grant the finding is about, when there is one: it may join a review. */
  exception?: Exception;
}

/**
 * Raises the finding in the caller's transaction unless a flag for it is open or was dismissed.
 * Audited and emitted as `flag.raised`; returns null when nothing was raised.
 */
export async function raiseFlag(t: TxCtx, finding: Finding): Promise<FlagResource | null> {
  const known = await t.tx
    .selectFrom('anomaly_flags')
    .select('id')
    .where('environment', '=', t.environment)
    .where('customer_id', '=', finding.customerId)
    .where('kind', '=', finding.kind)
    .where('subject', '=', finding.subject)
    .where('status', 'in', ['open', 'dismissed'])
    .executeTakeFirst();
  if (known) return null;
  const row = await t.tx
    .insertInto('anomaly_flags')
    .values({
      id: newId('flag', t.now.getTime()),
      environment: t.environment,
      customer_id: finding.customerId,
      kind: finding.kind,
      subject: finding.subject,
      detail: JSON.stringify(finding.detail),
      status: 'open',
      raised_at: t.now,
    })
    .onConflict((oc) =>
      oc.columns(['environment', 'customer_id', 'kind', 'subject']).where('status', '=', 'open').doNothing(),
    )
    .returningAll()
    .executeTakeFirst();
  // Another scan raised it a moment ago.
  if (!row) return null;
  const flag = toFlagResource(row);
  t.audit({
    action: 'flag.raised',
    target: { type: 'anomaly_flag', id: row.id },
    customerId: row.customer_id,
    after: flag,
  });
  t.emit({ topic: 'flag.raised', customerId: row.customer_id, payload: flag });
  if (finding.exception) await addFlaggedException(t, finding.exception, { id: row.id, kind: row.kind });
  return flag;
}

export async function getFlag(ctx: Ctx, id: string): Promise<FlagResource> {
  requireScope(ctx, 'admin');
  const row = await reader(ctx)
    .selectFrom('anomaly_flags')
    .selectAll()
    .where('environment', '=', ctx.environment)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) throw new NotFound('anomaly_flag', id);
  return toFlagResource(row);
}

export async function listFlags(
  ctx: Ctx,
  query: {
    limit: number;
    cursor?: string | undefined;
    status?: string | undefined;
    kind?: string | undefined;
    customer_id?: string | undefined;
  },
) {
  requireScope(ctx, 'admin');
  const after = decodeCursor<{ id: string }>(query.cursor, { id: 'string' });
  let q = reader(ctx).selectFrom('anomaly_flags').selectAll().where('environment', '=', ctx.environment);
  if (query.status !== undefined) q = q.where('status', '=', query.status);
  if (query.kind !== undefined) q = q.where('kind', '=', query.kind);
  if (query.customer_id !== undefined) q = q.where('customer_id', '=', query.customer_id);
  if (after) q = q.where('id', '>', after.id);
  const rows = await q
    .orderBy('id')
    .limit(query.limit + 1)
    .execute();
  return page(rows, query.limit, toFlagResource, (r) => ({ id: r.id }));
}

/** Resolves or dismisses an open flag; a closed one answers 409 `flag_closed`. */
export async function closeFlag(
  ctx: Ctx,
  id: string,
  status: 'resolved' | 'dismissed',
  comment: string | undefined,
): Promise<FlagResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await t.tx
      .selectFrom('anomaly_flags')
      .selectAll()
      .where('environment', '=', t.environment)
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    if (!before) throw new NotFound('anomaly_flag', id);
    if (before.status !== 'open')
      throw new Conflict('flag_closed', `Flag '${id}' is already ${before.status}`);
    const after = await t.tx
      .updateTable('anomaly_flags')
      .set({
        status,
        closed_at: t.now,
        closed_by: ctx.actor.person ?? ctx.actor.name ?? ctx.actor.id,
        comment: comment ?? null,
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    const flag = toFlagResource(after);
    t.audit({
      action: `flag.${status}`,
      target: { type: 'anomaly_flag', id },
      customerId: after.customer_id,
      before: toFlagResource(before),
      after: flag,
    });
    return flag;
  });
}
