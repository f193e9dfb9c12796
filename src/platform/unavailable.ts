import { TryAgainLater } from './errors.ts';

/**
 * PostgreSQL or Redis out of reach (stopped, restarting, crashed, the connection cut) is not the
 * request's fault and not a bug: it answers 503 problem+json with Retry-After, like a counter
 * rebuild, instead of a 500. The pg pool and ioredis reconnect on their own, so a retry after a
 * moment succeeds once the server is back. Recognised by what the drivers throw: socket error
 * codes, the drivers' own connection messages, and PostgreSQL's connection and shutdown states.
 */
export const UNAVAILABLE_RETRY_SECONDS = 2;

/** Socket errors: the server is not there, or went away mid-request. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
]);

/**
 * SQLSTATEs of a server that cannot take the query now: class 08 (connection exception),
 * 57P01-57P03 (admin shutdown, crash shutdown, cannot connect now: starting up or shutting down),
 * 53300 (too many connections).
 */
const UNAVAILABLE_STATES = /^(08...|57P0[123]|53300)$/;

const PG_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'is not queryable',
  'the database system is',
];

const REDIS_MESSAGES = [
  'Connection is closed',
  "Stream isn't writeable",
  'Reached the max retries per request limit',
];
/** Redis replies of a server that cannot serve now (loading its data, a failover in progress). */
const REDIS_REPLIES = /^(LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY)\b/;

export type Dependency = 'database' | 'redis';

/** Which dependency `err` says is out of reach, or null when it says nothing of the kind. */
export function unavailableDependency(err: unknown): Dependency | null {
  if (!(err instanceof Error)) return null;
  const code = (err as { code?: unknown }).code;
  const message = err.message ?? '';
  if (err.name === 'MaxRetriesPerRequestError' || REDIS_MESSAGES.some((m) => message.includes(m)))
    return 'redis';
  if (err.name === 'ReplyError' && REDIS_REPLIES.test(message)) return 'redis';
  if (typeof code === 'string' && UNAVAILABLE_STATES.test(code)) return 'database';
  if (PG_MESSAGES.some((m) => message.includes(m))) return 'database';
  if (typeof code === 'string' && SOCKET_CODES.has(code)) return redisSocket(err) ? 'redis' : 'database';
  // Node's connect to several addresses fails with an AggregateError of socket errors.
  if (err instanceof AggregateError && err.errors.some((e) => unavailableDependency(e) !== null))
    return unavailableDependency(err.errors[0]);
  return null;
}

/** ioredis connection errors carry no driver mark; the stack says which driver threw. */
function redisSocket(err: Error): boolean {
  return /ioredis/.test(err.stack ?? '');
}

/** `err` as the 503 it should be answered with, or null when it is some other failure. */
export function asUnavailable(err: unknown): TryAgainLater | null {
  const dependency = unavailableDependency(err);
  if (dependency === null) return null;
  return dependency === 'database'
    ? new TryAgainLater(
        'database_unavailable',
        'The database cannot be reached right now; try again shortly',
        UNAVAILABLE_RETRY_SECONDS,
      )
    : new TryAgainLater(
        'redis_unavailable',
        'Redis cannot be reached right now; try again shortly',
        UNAVAILABLE_RETRY_SECONDS,
      );
}
