import { LRUCache } from 'lru-cache';
import type { Clock } from './clock.ts';

/** Keys whose buckets are remembered at once; the least recently used is forgotten (refilled) first. */
const MAX_BUCKETS = 100_000;

interface Bucket {
  tokens: number;
  at: number;
}

/** What one request costs a rate-limited key, and the headers that say so. */
export interface RateDecision {
  allowed: boolean;
  /** Requests per second, which is also the bucket's size (the burst one second may hold). */
  limit: number;
  /** Whole requests left in the bucket after this one. */
  remaining: number;
  /** Seconds until the bucket is full again. */
  reset: number;
  /** Seconds until one request fits (set when refused). */
  retryAfter: number;
}

/**
 * A token bucket per API key, in process: a key limited to N requests per second holds up to N
 * tokens, refilled continuously at N per second, and each request takes one. Per node: behind a
 * load balancer over K nodes a key may make up to K times its limit. A refused request takes
 * nothing. Keys without a limit never reach it.
 */
export class RateLimiter {
  private readonly buckets = new LRUCache<string, Bucket>({ max: MAX_BUCKETS });
  constructor(private readonly clock: Clock) {}

  take(keyId: string, perSecond: number): RateDecision {
    const now = this.clock.now().getTime();
    let bucket = this.buckets.get(keyId);
    if (bucket === undefined) {
      bucket = { tokens: perSecond, at: now };
      this.buckets.set(keyId, bucket);
    } else {
      // The limit may have changed since the bucket was made: it never holds more than the limit.
      bucket.tokens = Math.min(perSecond, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
      bucket.at = now;
    }
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    const missing = perSecond - bucket.tokens;
    return {
      allowed,
      limit: perSecond,
      remaining: Math.floor(bucket.tokens),
      reset: Math.ceil(missing / perSecond),
      retryAfter: allowed ? 0 : Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond)),
    };
  }
}

/**
 * Requests the node:http fast path already charged before handing them to the app (after reading
 * the body): the app's authentication answers with this decision instead of taking another token.
 */
export const chargedRequests = new WeakMap<object, RateDecision>();

/** The IETF RateLimit header fields (draft-ietf-httpapi-ratelimit-headers, separate-field form). */
export function rateLimitHeaders(d: RateDecision): Record<string, string> {
  const headers: Record<string, string> = {
    'ratelimit-limit': String(d.limit),
    'ratelimit-remaining': String(d.remaining),
    'ratelimit-reset': String(d.reset),
    'ratelimit-policy': `${d.limit};w=1`,
  };
  if (!d.allowed) headers['retry-after'] = String(d.retryAfter);
  return headers;
}
