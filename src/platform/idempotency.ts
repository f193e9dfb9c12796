import { createHash } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { sql } from 'kysely';
import { BadRequest, Conflict, Unprocessable } from './errors.ts';
import type { AppEnv } from './http.ts';

/** A claimed key whose request never finished (a crash) may be taken over after this long. */
const ABANDONED_AFTER_MS = 60_000;

/**
 * `Idempotency-Key` on every POST: the first request claims the key; a repeat with the same body
 * replays the stored answer, one with another body is a 422, one racing the first is a 409.
 * Server errors release the key so the client can retry.
 */
export function idempotency(ttlSeconds: number): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const key = c.req.header('idempotency-key');
    if (c.req.method !== 'POST' || key === undefined) return next();
    if (key.length < 1 || key.length > 255) {
      throw new BadRequest('invalid_idempotency_key', 'Idempotency-Key must be 1-255 characters', [
        { path: 'header.idempotency-key', message: 'must be 1-255 characters' },
      ]);
    }
    const ctx = c.get('ctx');
    const db = ctx.deps.db;
    const body = await c.req.text();
    const requestHash = createHash('sha256').update(`${c.req.method} ${c.req.path}\n${body}`).digest('hex');
    const now = ctx.deps.clock.now();

    for (let attempt = 0; attempt < 2; attempt++) {
      const existing = await db
        .selectFrom('idempotency_keys')
        .selectAll()
        .where('environment', '=', ctx.environment)
        .where('key', '=', key)
        .executeTakeFirst();
      if (existing) {
        const expired = existing.expires_at.getTime() <= now.getTime();
        const abandoned =
          existing.status_code === null && now.getTime() - existing.created_at.getTime() > ABANDONED_AFTER_MS;
        if (expired || abandoned) {
          await db
            .deleteFrom('idempotency_keys')
            .where('environment', '=', ctx.environment)
            .where('key', '=', key)
            .where('created_at', '=', existing.created_at)
            .execute();
          continue;
        }
        if (existing.request_hash !== requestHash) {
          throw new Unprocessable(
            'idempotency_key_reused',
            'This Idempotency-Key was used with a different request',
            [{ path: 'header.idempotency-key', message: 'already used with another body or path' }],
          );
        }
        if (existing.status_code === null) {
          throw new Conflict(
            'idempotency_request_in_progress',
            'A request with this Idempotency-Key is still in progress',
          );
        }
        return c.body(existing.response_body ?? '', existing.status_code as 200, {
          'content-type': existing.response_content_type ?? 'application/json',
          'idempotent-replayed': 'true',
        });
      }
      const claimed = await db
        .insertInto('idempotency_keys')
        .values({
          environment: ctx.environment,
          key,
          method: c.req.method,
          path: c.req.path,
          request_hash: requestHash,
          created_at: now,
          expires_at: new Date(now.getTime() + ttlSeconds * 1000),
        })
        .onConflict((oc) => oc.columns(['environment', 'key']).doNothing())
        .executeTakeFirst();
      if (Number(claimed.numInsertedOrUpdatedRows ?? 0) === 1) break;
    }

    let stored = false;
    try {
      await next();
      const res = c.res;
      if (res.status < 500) {
        const text = await res.clone().text();
        await db
          .updateTable('idempotency_keys')
          .set({
            status_code: res.status,
            response_body: text,
            response_content_type: res.headers.get('content-type'),
          })
          .where('environment', '=', ctx.environment)
          .where('key', '=', key)
          .execute();
        stored = true;
      }
    } finally {
      if (!stored) {
        await db
          .deleteFrom('idempotency_keys')
          .where('environment', '=', ctx.environment)
          .where('key', '=', key)
          .where('status_code', 'is', null)
          .execute();
      }
    }
  };
}

export async function purgeExpiredIdempotencyKeys(db: import('./db.ts').Db): Promise<number> {
  const res = await db
    .deleteFrom('idempotency_keys')
    .where('expires_at', '<', sql<Date>`now()`)
    .executeTakeFirst();
  return Number(res.numDeletedRows);
}
