import { timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import type { AppEnv } from './http.ts';

/** On every answer: browsers must not guess a content type other than the one sent. */
export const NOSNIFF = { name: 'x-content-type-options', value: 'nosniff' } as const;

/**
 * CORS for browser consoles on the configured origins (`*` allows any). Preflights are answered
 * here, before authentication; the API key still travels in `Authorization`, never in cookies.
 */
export function corsFor(origins: readonly string[]): MiddlewareHandler<AppEnv> {
  return cors({
    origin: origins.includes('*') ? '*' : [...origins],
    allowMethods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    allowHeaders: ['authorization', 'content-type', 'idempotency-key', 'tessera-actor', 'x-request-id'],
    exposeHeaders: ['x-request-id', 'idempotent-replayed', 'retry-after'],
    maxAge: 600,
  });
}

/** Whether `Authorization: Bearer <token>` (scheme in any case) carries exactly `expected`. */
export function bearerMatches(header: string | undefined, expected: string): boolean {
  const sent = header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  if (sent === undefined) return false;
  const a = Buffer.from(sent);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
