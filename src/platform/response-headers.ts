import { createHash, timingSafeEqual } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import type { AppEnv } from './http.ts';

/** On every answer: browsers must not guess a content type other than the one sent. */
export const NOSNIFF = { name: 'x-content-type-options', value: 'nosniff' } as const;

/**
 * On every answer of the app (not the node:http fast path, whose JSON only product backends read):
 * no page may frame an answer, and no answer leaks its URL to another site as a referrer.
 */
export const API_HEADERS: readonly (readonly [string, string])[] = [
  ['x-frame-options', 'DENY'],
  ['referrer-policy', 'no-referrer'],
];

/**
 * The API reference page at /docs: its own inline style and nothing else (no scripts, no fetches,
 * no framing by another page).
 */
export const DOCS_PAGE_CSP =
  "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/**
 * Strict-Transport-Security when TESSERA_HSTS_SECONDS is set (behind https). Browsers ignore it
 * on plain http, so it is sent on every answer, the fast path's included.
 */
export function hstsHeader(seconds: number): { name: string; value: string } | null {
  return seconds > 0 ? { name: 'strict-transport-security', value: `max-age=${seconds}` } : null;
}

/**
 * CORS for browser consoles on the configured origins (`*` allows any). Preflights are answered
 * here, before authentication; the API key still travels in `Authorization`, never in cookies.
 */
export function corsFor(origins: readonly string[]): MiddlewareHandler<AppEnv> {
  return cors({
    origin: origins.includes('*') ? '*' : [...origins],
    allowMethods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    allowHeaders: ['authorization', 'content-type', 'idempotency-key', 'tessera-actor', 'x-request-id'],
    exposeHeaders: [
      'x-request-id',
      'idempotent-replayed',
      'retry-after',
      'ratelimit-limit',
      'ratelimit-remaining',
      'ratelimit-reset',
      'ratelimit-policy',
    ],
    maxAge: 600,
  });
}

/** Whether `Authorization: Bearer <token>` (scheme in any case) carries exactly `expected`. */
export function bearerMatches(header: string | undefined, expected: string): boolean {
  const sent = header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
  if (sent === undefined) return false;
  return secretsEqual(sent, expected);
}

/**
 * Compares two secrets in constant time: their SHA-256 digests (always 32 bytes, so neither the
 * content nor the length of the expected secret shows in the time taken) with `timingSafeEqual`.
 */
export function secretsEqual(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}
