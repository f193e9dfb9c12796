import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz'; // Crockford base32, lower case

/**
 * Sortable ids: `${prefix}_` + 10 chars of millisecond time + 16 random chars (80 bits).
 * Lexical order follows creation time, which keeps cursors and indexes cheap.
 */
export function newId(prefix: string, now = Date.now()): string {
  let time = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    time = ALPHABET[t % 32] + time;
    t = Math.floor(t / 32);
  }
  const bytes = randomBytes(16);
  let rand = '';
  for (const b of bytes) rand += ALPHABET[b % 32];
  return `${prefix}_${time}${rand}`;
}

export function randomToken(length: number): string {
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = randomBytes(length * 2);
  let out = '';
  // Rejection sampling keeps every character equally likely.
  for (const b of bytes) {
    if (b < 248) out += chars[b % 62];
    if (out.length === length) break;
  }
  return out.length === length ? out : out + randomToken(length - out.length);
}

/**
 * Request ids on the hot path: a random per-process prefix and a counter, unique without a
 * random draw per request.
 */
export function requestIdFactory(): () => string {
  const prefix = newId('req').slice(4, 18);
  let counter = 0;
  return () => `req_${prefix}${(counter++).toString(36)}`;
}
