import { generateSecret, hashSecret } from '../../platform/auth.ts';
import { type Ctx, reader, requireScope, withTransaction } from '../../platform/context.ts';
import type { Db } from '../../platform/db.ts';
import { NotFound } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import type { ApiKey } from './schema.ts';

type Scope = 'admin' | 'check';

interface KeyRow {
  id: string;
  name: string;
  scopes: string[];
  environment: string;
  prefix: string;
  created_at: Date;
  revoked_at: Date | null;
  rate_limit_per_second: number | null;
}

function toApiKey(row: KeyRow): ApiKey {
  return {
    id: row.id,
    name: row.name,
    scopes: row.scopes as Scope[],
    environment: row.environment as ApiKey['environment'],
    prefix: row.prefix,
    created_at: row.created_at.toISOString(),
    revoked_at: row.revoked_at?.toISOString() ?? null,
    rate_limit_per_second: row.rate_limit_per_second,
  };
}

export async function createApiKey(
  ctx: Ctx,
  input: { name: string; scopes: Scope[]; rate_limit_per_second?: number | null | undefined },
): Promise<ApiKey & { secret: string }> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const secret = generateSecret(ctx.environment);
    const row = await t.tx
      .insertInto('api_keys')
      .values({
        id: newId('key', t.now.getTime()),
        environment: ctx.environment,
        name: input.name,
        scopes: JSON.stringify([...new Set(input.scopes)].sort()),
        prefix: secret.slice(0, 12),
        secret_hash: hashSecret(secret),
        created_at: t.now,
        rate_limit_per_second: input.rate_limit_per_second ?? null,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const key = toApiKey(row);
    t.audit({ action: 'api_key.created', target: { type: 'api_key', id: key.id }, after: key });
    return { ...key, secret };
  });
}

export async function listApiKeys(ctx: Ctx, query: { limit: number; cursor?: string | undefined }) {
  requireScope(ctx, 'admin');
  const after = decodeCursor<{ id: string }>(query.cursor, { id: 'string' });
  let q = reader(ctx).selectFrom('api_keys').selectAll().where('environment', '=', ctx.environment);
  if (after) q = q.where('id', '>', after.id);
  const rows = await q
    .orderBy('id')
    .limit(query.limit + 1)
    .execute();
  return page(rows, query.limit, toApiKey, (r) => ({ id: r.id }));
}

export async function revokeApiKey(ctx: Ctx, id: string): Promise<ApiKey> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await t.tx
      .selectFrom('api_keys')
      .selectAll()
      .where('environment', '=', ctx.environment)
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    if (!before) throw new NotFound('api_key', id);
    if (before.revoked_at) return toApiKey(before);
    const after = await t.tx
      .updateTable('api_keys')
      .set({ revoked_at: t.now })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    t.emit({ topic: 'api_key.revoked', payload: { id } });
    t.audit({
      action: 'api_key.revoked',
      target: { type: 'api_key', id },
      before: toApiKey(before),
      after: toApiKey(after),
    });
    return toApiKey(after);
  });
}

/** Renames a key or changes its rate limit; the key cache forgets it (other nodes within 5 s). */
export async function updateApiKey(
  ctx: Ctx,
  id: string,
  input: { name?: string | undefined; rate_limit_per_second?: number | null | undefined },
): Promise<ApiKey> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await t.tx
      .selectFrom('api_keys')
      .selectAll()
      .where('environment', '=', ctx.environment)
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    if (!before) throw new NotFound('api_key', id);
    const after = await t.tx
      .updateTable('api_keys')
      .set({
        ...(input.name !== undefined ? { name: input.name } : {}),
        ...(input.rate_limit_per_second !== undefined
          ? { rate_limit_per_second: input.rate_limit_per_second }
          : {}),
      })
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    t.emit({ topic: 'api_key.updated', payload: { id } });
    t.audit({
      action: 'api_key.updated',
      target: { type: 'api_key', id },
      before: toApiKey(before),
      after: toApiKey(after),
    });
    return toApiKey(after);
  });
}

/**
 * Makes sure the configured bootstrap key exists as an admin key of the test environment
 * (so a fresh install and the tests can start without a manual step).
 */
export async function ensureBootstrapKey(db: Db, secret: string, now: Date): Promise<void> {
  const hash = hashSecret(secret);
  const existing = await db
    .selectFrom('api_keys')
    .select(['id', 'revoked_at'])
    .where('secret_hash', '=', hash)
    .executeTakeFirst();
  if (existing) return;
  await db
    .insertInto('api_keys')
    .values({
      id: newId('key', now.getTime()),
      environment: 'test',
      name: 'bootstrap (TESSERA_ADMIN_KEY)',
      scopes: JSON.stringify(['admin']),
      prefix: secret.slice(0, 12),
      secret_hash: hash,
      created_at: now,
    })
    .onConflict((oc) => oc.column('secret_hash').doNothing())
    .execute();
}
