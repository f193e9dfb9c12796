import { type Ctx, reader, requireScope } from '../../platform/context.ts';
import { NotFound } from '../../platform/errors.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import { type Row, toResource } from './request-rows.ts';
import type { AccessRequestResource } from './request-schema.ts';

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

export interface AccessRequestQuery {
  limit: number;
  cursor?: string | undefined;
  status?: string | undefined;
  customer_id?: string | undefined;
}

/** A page of requests, oldest first, filtered by status and customer; the cursor is the last row's (created_at, id). */
export async function listAccessRequests(
  ctx: Ctx,
  query: AccessRequestQuery,
): Promise<{ data: AccessRequestResource[]; next_cursor: string | null }> {
  requireScope(ctx, 'admin');
  const after = decodeCursor<{ at: number; id: string }>(query.cursor, { at: 'number', id: 'string' });
  let q = reader(ctx).selectFrom('access_requests').selectAll().where('environment', '=', ctx.environment);
  if (query.status !== undefined) q = q.where('status', '=', query.status);
  if (query.customer_id !== undefined) q = q.where('customer_id', '=', query.customer_id);
  if (after) {
    const at = new Date(after.at);
    q = q.where((eb) =>
      eb.or([eb('created_at', '>', at), eb.and([eb('created_at', '=', at), eb('id', '>', after.id)])]),
    );
  }
  const rows = await q
    .orderBy('created_at')
    .orderBy('id')
    .limit(query.limit + 1)
    .execute();
  return page(rows as Row[], query.limit, toResource, (r) => ({ at: r.created_at.getTime(), id: r.id }));
}
