import { type Ctx, reader, requireScope, withTransaction } from '../../platform/context.ts';
import { NotFound } from '../../platform/errors.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import type { ActorGroupResource, PutActorGroupInput } from './schema.ts';

interface GroupRow {
  key: string;
  members: string[];
  created_at: Date;
  updated_at: Date;
}

function toResource(row: GroupRow): ActorGroupResource {
  return {
    key: row.key,
    members: row.members,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
  };
}

/** Creates or replaces a group of actors; `created` says which, for 201 or 200. */
export async function putActorGroup(
  ctx: Ctx,
  key: string,
  input: PutActorGroupInput,
): Promise<{ created: boolean; group: ActorGroupResource }> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await t.tx
      .selectFrom('actor_groups')
      .select(['key', 'members', 'created_at', 'updated_at'])
      .where('environment', '=', ctx.environment)
      .where('key', '=', key)
      .forUpdate()
      .executeTakeFirst();
    const row = await t.tx
      .insertInto('actor_groups')
      .values({
        environment: ctx.environment,
        key,
        members: JSON.stringify(input.members),
        created_at: t.now,
        updated_at: t.now,
      })
      .onConflict((oc) =>
        oc
          .columns(['environment', 'key'])
          .doUpdateSet({ members: JSON.stringify(input.members), updated_at: t.now }),
      )
      .returning(['key', 'members', 'created_at', 'updated_at'])
      .executeTakeFirstOrThrow();
    const group = toResource(row);
    t.audit({
      action: before ? 'actor_group.updated' : 'actor_group.created',
      target: { type: 'actor_group', id: key },
      before: before ? toResource(before) : undefined,
      after: group,
    });
    return { created: !before, group };
  });
}

export async function getActorGroup(ctx: Ctx, key: string): Promise<ActorGroupResource> {
  requireScope(ctx, 'admin');
  const row = await reader(ctx)
    .selectFrom('actor_groups')
    .select(['key', 'members', 'created_at', 'updated_at'])
    .where('environment', '=', ctx.environment)
    .where('key', '=', key)
    .executeTakeFirst();
  if (!row) throw new NotFound('actor_group', key);
  return toResource(row);
}

/** A page of the environment's groups, by key. */
export async function listActorGroups(
  ctx: Ctx,
  query: { limit: number; cursor?: string | undefined },
): Promise<{ data: ActorGroupResource[]; next_cursor: string | null }> {
  requireScope(ctx, 'admin');
  const after = decodeCursor<{ key: string }>(query.cursor, { key: 'string' });
  let q = reader(ctx)
    .selectFrom('actor_groups')
    .select(['key', 'members', 'created_at', 'updated_at'])
    .where('environment', '=', ctx.environment);
  if (after) q = q.where('key', '>', after.key);
  const rows = await q
    .orderBy('key')
    .limit(query.limit + 1)
    .execute();
  return page(rows, query.limit, toResource, (r) => ({ key: r.key }));
}

/**
 * Deletes a group. Policies that name it keep doing so; it then has no members, so its stages can
 * be decided only by the people they name directly (or after escalation). A group of the same key
 * made later is a new group that those policies name again.
 */
export async function deleteActorGroup(ctx: Ctx, key: string): Promise<ActorGroupResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const row = await t.tx
      .deleteFrom('actor_groups')
      .where('environment', '=', ctx.environment)
      .where('key', '=', key)
      .returning(['key', 'members', 'created_at', 'updated_at'])
      .executeTakeFirst();
    if (!row) throw new NotFound('actor_group', key);
    const group = toResource(row);
    t.audit({ action: 'actor_group.deleted', target: { type: 'actor_group', id: key }, before: group });
    return group;
  });
}

/** The members of each named group that exists in the environment (a missing group has none). */
export async function groupMembers(ctx: Ctx, keys: readonly string[]): Promise<Map<string, string[]>> {
  if (keys.length === 0) return new Map();
  const rows = await reader(ctx)
    .selectFrom('actor_groups')
    .select(['key', 'members'])
    .where('environment', '=', ctx.environment)
    .where('key', 'in', [...keys])
    .execute();
  return new Map(rows.map((r) => [r.key, r.members]));
}
