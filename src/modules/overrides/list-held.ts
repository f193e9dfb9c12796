import type { Selectable } from 'kysely';
import { type Ctx, reader, requireScope } from '../../platform/context.ts';
import type { DB } from '../../platform/db.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import { type HeldTable, listCustomerRows, requireLiveCustomer } from './repo.ts';

/** A page of a customer's overrides or grants, each as its resource evaluated now. */
export async function listHeld<T extends HeldTable, R>(
  ctx: Ctx,
  table: T,
  customerId: string,
  query: { limit: number; cursor?: string | undefined },
  toResource: (row: Selectable<DB[T]>, now: Date) => R,
) {
  requireScope(ctx, 'admin');
  await requireLiveCustomer(reader(ctx), ctx.environment, customerId);
  const after = decodeCursor<{ id: string }>(query.cursor, { id: 'string' });
  const rows = await listCustomerRows(
    reader(ctx),
    table,
    ctx.environment,
    customerId,
    after?.id,
    query.limit + 1,
  );
  const now = ctx.deps.clock.now();
  return page(
    rows,
    query.limit,
    (r) => toResource(r, now),
    // Both tables have an id; Kysely cannot see that through the generic.
    (r) => ({ id: (r as { id: string }).id }),
  );
}
