import { createHash } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { Db } from './db.ts';
import { BadRequest, Conflict, Unprocessable } from './errors.ts';
import type { AppEnv } from './http.ts';
import { redactSecrets, secretFieldsOf } from './secret-answer.ts';

/** A claimed key whose request never finished (a crash) may be taken over after this long. */
const ABANDONED_AFTER_MS = 60_000;

/**
 * `Idempotency-Key` on every POST of an authenticated caller. A record belongs to the API key that
 * made it (another key never sees or blocks it) and runs after authentication and the route's scope
 * check. The first request claims the key; a repeat with the same body replays the stored answer,
 * one with another body is a 422, one racing the first is a 409.
 *
 * Only 2xx answers are stored: a 4xx or 5xx changed nothing, so the key is released and the client
 * may fix its request and retry with it. Fields a route marked secret (`carriesSecret`) are removed
 * from the stored copy, so a replay never hands out a secret.
 */
export function idempotency(ttlSeconds: number): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const key = c.req.header('idempotency-key');
    if (c.req.method !== 'POST' || key === undefined) return next();
    // Unauthenticated routes (Stripe's webhooks) have no caller to own a record.
    const ctx = c.get('ctx');
    const owner = ctx?.actor.type === 'api_key' ? ctx.actor.id : null;
    if (!ctx || owner === null) return next();
    if (key.length < 1 || key.length > 255) {
      throw new BadRequest('invalid_idempotency_key', 'Idempotency-Key must be 1-255 characters', [
        { path: 'header.idempotency-key', message: 'must be 1-255 characters' },
      ]);
    }
    const db = ctx.deps.db;
    const body = await c.req.text();
    const requestHash = createHash('sha256').update(`${c.req.method} ${c.req.path}\n${body}`).digest('hex');
    const now = ctx.deps.clock.now();
    const record = db
      .selectFrom('idempotency_keys')
      .where('environment', '=', ctx.environment)
      .where('api_key_id', '=', owner)
      .where('key', '=', key);

    for (let attempt = 0; attempt < 2; attempt++) {
      const existing = await record.selectAll().executeTakeFirst();
      if (existing) {
        const expired = existing.expires_at.getTime() <= now.getTime();
        const abandoned =
          existing.status_code === null && now.getTime() - existing.created_at.getTime() > ABANDONED_AFTER_MS;
        if (expired || abandoned) {
          await db
            .deleteFrom('idempotency_keys')
            .where('environment', '=', ctx.environment)
            .where('api_key_id', '=', owner)
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
          api_key_id: owner,
          key,
          method: c.req.method,
          path: c.req.path,
          request_hash: requestHash,
          created_at: now,
          expires_at: new Date(now.getTime() + ttlSeconds * 1000),
        })
        .onConflict((oc) => oc.columns(['environment', 'api_key_id', 'key']).doNothing())
        .executeTakeFirst();
      if (Number(claimed.numInsertedOrUpdatedRows ?? 0) === 1) break;
    }

    let stored = false;
    try {
      await next();
      const res = c.res;
      if (res.status >= 200 && res.status < 300) {
        const text = await res.clone().text();
        const secrets = secretFieldsOf(c);
        await db
          .updateTable('idempotency_keys')
          .set({
            status_code: res.status,
            response_body: secrets ? redactSecrets(text, secrets) : text,
            response_content_type: res.headers.get('content-type'),
          })
          .where('environment', '=', ctx.environment)
          .where('api_key_id', '=', owner)
          .where('key', '=', key)
          .execute();
        stored = true;
      }
    } finally {
      if (!stored) {
        await db
          .deleteFrom('idempotency_keys')
          .where('environment', '=', ctx.environment)
          .where('api_key_id', '=', owner)
          .where('key', '=', key)
          .where('status_code', 'is', null)
          .execute();
      }
    }
  };
}

export interface PurgeOptions {
  /** Records deleted per statement (default 1,000). */
  batchSize?: number;
  /** Statements per call at most (default 100); the next call takes the rest. */
  maxBatches?: number;
}

/**
 * Deletes the records that expired by `now` (the injected clock's time, not the database's), a
 * batch per statement, so a large backlog never holds its locks for long. A record a request holds
 * at this moment is skipped (a later run takes it). Returns how many went.
 */
export async function purgeExpiredIdempotencyKeys(
  db: Db,
  now: Date,
  options: PurgeOptions = {},
): Promise<number> {
  const batchSize = options.batchSize ?? 1_000;
  const maxBatches = options.maxBatches ?? 100;
  let purged = 0;
  for (let batch = 0; batch < maxBatches; batch++) {
    const res = await db
      .deleteFrom('idempotency_keys')
      .where((eb) =>
        eb(
          eb.refTuple('environment', 'api_key_id', 'key'),
          'in',
          eb
            .selectFrom('idempotency_keys')
            .select(['environment', 'api_key_id', 'key'])
            .where('expires_at', '<=', now)
            .orderBy('expires_at')
            .limit(batchSize)
            .forUpdate()
            .skipLocked()
            .$asTuple('environment', 'api_key_id', 'key'),
        ),
      )
      .executeTakeFirst();
    const deleted = Number(res.numDeletedRows);
    purged += deleted;
    if (deleted < batchSize) break;
  }
  return purged;
}
