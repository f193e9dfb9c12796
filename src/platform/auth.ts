import { createHash } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { LRUCache } from 'lru-cache';
import { type AuthBrake, clientAddress, socketAddressOf } from './auth-brake.ts';
import type { Clock } from './clock.ts';
import type { Scope } from './context.ts';
import type { Db } from './db.ts';
import { problem, Unauthorized, ValidationFailed } from './errors.ts';
import type { AppEnv } from './http.ts';
import { randomToken } from './ids.ts';
import { chargedRequests, type RateLimiter, rateLimitHeaders } from './rate-limit.ts';
import { unavailableDependency } from './unavailable.ts';

export interface ResolvedKey {
  id: string;
  name: string;
  environment: string;
  scopes: ReadonlySet<Scope>;
  actor: { type: 'api_key'; id: string; name: string };
  /** Requests per second this key may make on this node; 0 is unlimited (see rate-limit.ts). */
  rateLimit: number;
}

const KEY_PATTERN = /^sk_(test|live)_[A-Za-z0-9]{16,128}$/;

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function generateSecret(environment: string): string {
  return `sk_${environment}_${randomToken(32)}`;
}

/** How long an unknown (well-formed) key is remembered as unknown, whatever the key cache time. */
const UNKNOWN_KEY_SECONDS = 5;

export interface ApiKeyResolverOptions {
  /** Every time the cache reads (entry ends, refresh points) comes from here; there is no default. */
  clock: Clock;
  /** Secrets cached at once; the least recently used entry makes room for a new one. */
  maxEntries?: number;
  /** Requests per second for keys whose own limit is NULL; 0 (the default) is unlimited. */
  defaultRateLimit?: number;
}

/**
 * Resolves API keys by the hash of their secret, caching answers in process for at most
 * `ttlSeconds` so a revoked key stops working within that time without a query per request.
 * A key in use is looked up again in the background once its entry is past `REFRESH_AT` of its
 * time, so under steady traffic the entry never lapses (no request waits on the database and none
 * is handed from the fast path to the app for it); the entry's end stays the bound on how long a
 * revoked key is honoured. Look-ups of one secret share one query.
 *
 * A secret that does not look like a key is refused without a query and is not cached. An unknown
 * key is remembered for `UNKNOWN_KEY_SECONDS` (a secret is generated when its key is created, so no
 * request can have tried it before: caching "unknown" never hides a new key).
 */
export class ApiKeyResolver {
  private readonly cache: LRUCache<string, CachedKey>;
  private readonly inFlight = new Map<string, Promise<ResolvedKey | null>>();
  private readonly clock: Clock;
  private readonly defaultRateLimit: number;
  private generation = 0;
  constructor(
    private readonly db: Db,
    private readonly ttlSeconds: number,
    options: ApiKeyResolverOptions,
  ) {
    this.clock = options.clock;
    this.defaultRateLimit = options.defaultRateLimit ?? 0;
    this.cache = new LRUCache({ max: options.maxEntries ?? 10_000 });
  }

  resolve(secret: string): Promise<ResolvedKey | null> {
    // Cached by the secret itself (it arrives in every request anyway), so a hit costs no hashing.
    const known = this.peek(secret);
    return known !== undefined ? Promise.resolve(known) : this.lookUp(secret);
  }

  /**
   * The cached answer for a secret without any IO: the key, null for a known-bad secret, or
   * undefined when the cache cannot say (then `resolve` must ask the database).
   */
  peek(secret: string): ResolvedKey | null | undefined {
    const hit = this.cache.get(secret);
    // Only well-formed secrets are ever cached, so the pattern is tested on a miss alone.
    if (hit === undefined) return KEY_PATTERN.test(secret) ? undefined : null;
    const now = this.clock.now().getTime();
    if (hit.until <= now) return this.stale(secret, hit, now);
    if (hit.refreshAt <= now && hit.key !== null && !this.inFlight.has(secret))
      this.lookUp(secret).catch(() => {
        // A failed refresh leaves the entry to lapse at its end; the next request asks again.
      });
    return hit.key;
  }

  /**
   * A lapsed entry while the database cannot be reached: the key as last read, for at most
   * `STALE_IF_UNREACHABLE_SECONDS` past its end, looked up again once a second meanwhile. No
   * revocation can be written while the database is down, so this honours only a revocation
   * written in the last moments before the outage longer than usual; without it, every request
   * would answer 503 once keys lapse, though the rest of the answer comes from memory.
   */
  private stale(secret: string, hit: CachedKey, now: number): ResolvedKey | undefined {
    if (hit.key === null || hit.unreachableAt === undefined) return undefined;
    if (now >= hit.until + STALE_IF_UNREACHABLE_SECONDS * 1000) return undefined;
    if (now - hit.unreachableAt >= 1000 && !this.inFlight.has(secret))
      this.lookUp(secret).catch(() => {
        // Still out of reach: the stale entry stays until its limit.
      });
    return hit.key;
  }

  forget(): void {
    this.cache.clear();
    // A query already under way read the keys before whatever made us forget: it must not put
    // its answer back.
    this.generation += 1;
    this.inFlight.clear();
  }

  private lookUp(secret: string): Promise<ResolvedKey | null> {
    const running = this.inFlight.get(secret);
    if (running) return running;
    const query = this.query(secret).finally(() => {
      if (this.inFlight.get(secret) === query) this.inFlight.delete(secret);
    });
    this.inFlight.set(secret, query);
    return query;
  }

  private async query(secret: string): Promise<ResolvedKey | null> {
    const started = this.clock.now().getTime();
    const generation = this.generation;
    let row:
      | {
          id: string;
          name: string;
          environment: string;
          scopes: unknown;
          rate_limit_per_second: number | null;
        }
      | undefined;
    try {
      row = await this.db
        .selectFrom('api_keys')
        .select(['id', 'name', 'environment', 'scopes', 'rate_limit_per_second'])
        .where('secret_hash', '=', hashSecret(secret))
        .where('revoked_at', 'is', null)
        .executeTakeFirst();
    } catch (err) {
      const hit = this.cache.peek(secret);
      if (unavailableDependency(err) !== 'database' || hit === undefined || hit.key === null) throw err;
      // Remember when the database was last found out of reach: `peek` serves the key meanwhile.
      hit.unreachableAt = this.clock.now().getTime();
      const stale = this.stale(secret, hit, hit.unreachableAt);
      if (stale === undefined) throw err;
      return stale;
    }
    const key: ResolvedKey | null = row
      ? {
          id: row.id,
          name: row.name,
          environment: row.environment,
          scopes: new Set(row.scopes as Scope[]),
          actor: { type: 'api_key', id: row.id, name: row.name },
          rateLimit: row.rate_limit_per_second ?? this.defaultRateLimit,
        }
      : null;
    if (generation !== this.generation) return key;
    // Unknown keys are remembered briefly too, so a flood of bad keys does not become a flood of
    // queries. The entry's time counts from when the query started: what it read is that old.
    const ms = (key ? this.ttlSeconds : UNKNOWN_KEY_SECONDS) * 1000;
    this.cache.set(secret, { key, until: started + ms, refreshAt: started + ms * REFRESH_AT });
    return key;
  }
}

/** The share of an entry's time after which a key in use is looked up again in the background. */
const REFRESH_AT = 0.6;

/** How long past its end a key in the cache is still honoured while the database cannot be reached. */
const STALE_IF_UNREACHABLE_SECONDS = 300;

interface CachedKey {
  key: ResolvedKey | null;
  until: number;
  refreshAt: number;
  /** When a look-up last found the database out of reach (unset while it answers). */
  unreachableAt?: number;
}

export interface AuthenticateOptions {
  brake: AuthBrake;
  trustProxy: boolean;
  limiter: RateLimiter;
}

/**
 * `Authorization: Bearer <key>` (the scheme name in any case). Every failure counts against the
 * client's address; a braked address gets 429 unless its key is one the cache already knows.
 */
export function authenticate(
  resolver: ApiKeyResolver,
  options: AuthenticateOptions,
): MiddlewareHandler<AppEnv> {
  const { brake, trustProxy, limiter } = options;
  return async (c, next) => {
    const address = clientAddress(socketAddressOf(c), c.req.header('x-forwarded-for'), trustProxy);
    const header = c.req.header('authorization');
    const secret = header?.match(/^Bearer\s+(\S+)\s*$/i)?.[1];
    const wait = brake.retryAfter(address);
    if (wait > 0 && (secret === undefined || !resolver.peek(secret))) {
      return c.json(
        problem(
          429,
          'too_many_auth_failures',
          `Too many failed authentications from this address; try again in ${wait} s`,
          c.get('requestId'),
        ),
        429,
        { 'content-type': 'application/problem+json', 'retry-after': String(wait) },
      );
    }
    if (secret === undefined) {
      brake.fail(address);
      throw new Unauthorized('Send an API key as `Authorization: Bearer sk_...`');
    }
    const key = await resolver.resolve(secret);
    if (!key) {
      brake.fail(address);
      throw new Unauthorized('The API key is not valid or has been revoked');
    }
    if (key.rateLimit > 0) {
      const incoming = (c.env as { incoming?: object } | undefined)?.incoming;
      const charged = incoming === undefined ? undefined : chargedRequests.get(incoming);
      const decision = charged ?? limiter.take(key.id, key.rateLimit);
      const headers = rateLimitHeaders(decision);
      if (!decision.allowed) {
        return c.json(
          problem(
            429,
            'rate_limited',
            `This API key may make ${key.rateLimit} requests per second; try again in ${decision.retryAfter} s`,
            c.get('requestId'),
          ),
          429,
          { 'content-type': 'application/problem+json', ...headers },
        );
      }
      // Set before the response exists, so every answer (errors included) carries them.
      for (const name in headers) c.header(name, headers[name]);
    }
    const person = personOf(c.req.header('tessera-actor'));
    c.set('ctx', {
      deps: c.get('deps'),
      environment: key.environment,
      // The key's id stays the actor's id (idempotency ownership); the person rides beside it.
      actor: person === undefined ? key.actor : { ...key.actor, person },
      scopes: key.scopes,
      requestId: c.get('requestId'),
    });
    await next();
  };
}

/** An email or an id: 1-254 visible characters, no whitespace or control characters. */
export const PERSON_PATTERN = /^[A-Za-z0-9._%+\-@:/]{1,254}$/;

/** The `Tessera-Actor` header: the person an admin call acts for, or undefined when not sent. */
export function personOf(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (PERSON_PATTERN.test(header)) return header;
  throw new ValidationFailed([
    {
      path: 'Tessera-Actor',
      message: 'must be an email or id of 1-254 characters (letters, digits and . _ % + - @ : /)',
    },
  ]);
}
