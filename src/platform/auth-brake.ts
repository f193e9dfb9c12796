import { getConnInfo } from '@hono/node-server/conninfo';
import { LRUCache } from 'lru-cache';
import type { Clock } from './clock.ts';
import type { AppContext } from './http.ts';

/** Addresses remembered at once; the least recently failing is forgotten first. */
const MAX_ADDRESSES = 50_000;

/** The bucket of requests that carry no socket (app.request in tests, requests built in process). */
export const UNKNOWN_ADDRESS = 'unknown';

interface Failures {
  count: number;
  since: number;
}

/**
 * A brake on authentication failures per client address: after `limit` failures within a window,
 * the address gets 429 (with Retry-After) until the window ends, without any key being looked up.
 * In process, per node: N nodes allow N times the limit, which is still a brake. `limit` 0 turns
 * it off.
 */
export class AuthBrake {
  private readonly failures: LRUCache<string, Failures>;
  private readonly windowMs: number;
  constructor(
    private readonly clock: Clock,
    private readonly limit: number,
    windowSeconds: number,
  ) {
    this.windowMs = windowSeconds * 1000;
    this.failures = new LRUCache({ max: MAX_ADDRESSES });
  }

  /** Seconds until the address may try again; 0 when it is not braked. */
  retryAfter(address: string): number {
    if (this.limit === 0) return 0;
    const entry = this.failures.peek(address);
    if (entry === undefined || entry.count < this.limit) return 0;
    const left = entry.since + this.windowMs - this.clock.now().getTime();
    return left > 0 ? Math.ceil(left / 1000) : 0;
  }

  fail(address: string): void {
    if (this.limit === 0) return;
    const now = this.clock.now().getTime();
    const entry = this.failures.get(address);
    if (entry === undefined || entry.since + this.windowMs <= now)
      this.failures.set(address, { count: 1, since: now });
    else entry.count += 1;
  }
}

/**
 * The client's address: the last X-Forwarded-For entry (what the nearest proxy saw) when a proxy
 * is trusted, else the socket's remote address, else the shared `unknown` bucket.
 */
export function clientAddress(
  socketAddress: string | undefined,
  forwardedFor: string | undefined,
  trustProxy: boolean,
): string {
  if (trustProxy && forwardedFor) {
    const last = forwardedFor.split(',').at(-1)?.trim();
    if (last) return last;
  }
  return socketAddress || UNKNOWN_ADDRESS;
}

/** The socket address of a request served by @hono/node-server; undefined without a socket. */
export function socketAddressOf(c: AppContext): string | undefined {
  const env = c.env as { incoming?: unknown; server?: unknown } | undefined;
  if (!env || (env.incoming === undefined && env.server === undefined)) return undefined;
  try {
    return getConnInfo(c).remote.address;
  } catch {
    return undefined;
  }
}
