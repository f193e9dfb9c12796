import { createHash } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { Scope } from './context.ts';
import type { Db } from './db.ts';
import { Unauthorized } from './errors.ts';
import type { AppEnv } from './http.ts';
import { randomToken } from './ids.ts';

export interface ResolvedKey {
  id: string;
  name: string;
  environment: string;
  scopes: ReadonlySet<Scope>;
  actor: { type: 'api_key'; id: string; name: string };
}

const KEY_PATTERN = /^sk_(test|live)_[A-Za-z0-9]{16,128}$/;

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export function generateSecret(environment: string): string {
  return `sk_${environment}_${randomToken(32)}`;
}

/**
 * Resolves API keys by the hash of their secret, caching answers in process for at most
 * `ttlSeconds` so a revoked key stops working within that time without a query per request.
 */
export class ApiKeyResolver {
  private readonly cache = new Map<string, { key: ResolvedKey | null; until: number }>();
  constructor(
    private readonly db: Db,
    private readonly ttlSeconds: number,
    private readonly maxEntries = 10_000,
  ) {}

  async resolve(secret: string): Promise<ResolvedKey | null> {
    // Cached by the secret itself (it arrives in every request anyway), so a hit costs no hashing.
    const now = Date.now();
    const hit = this.cache.get(secret);
    if (hit && hit.until > now) return hit.key;
    if (!KEY_PATTERN.test(secret)) return null;
    const hash = hashSecret(secret);
    const row = await this.db
      .selectFrom('api_keys')
      .select(['id', 'name', 'environment', 'scopes'])
      .where('secret_hash', '=', hash)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    const key: ResolvedKey | null = row
      ? {
          id: row.id,
          name: row.name,
          environment: row.environment,
          scopes: new Set(row.scopes as Scope[]),
          actor: { type: 'api_key', id: row.id, name: row.name },
        }
      : null;
    if (this.cache.size >= this.maxEntries) this.cache.clear();
    // Unknown keys are remembered briefly too, so a flood of bad keys does not become a flood of queries.
    this.cache.set(secret, {
      key,
      until: now + (key ? this.ttlSeconds : Math.min(1, this.ttlSeconds)) * 1000,
    });
    return key;
  }

  /**
   * The cached answer for a secret without any IO: the key, null for a known-bad secret, or
   * undefined when the cache cannot say (then `resolve` must ask the database).
   */
  peek(secret: string): ResolvedKey | null | undefined {
    const hit = this.cache.get(secret);
    return hit && hit.until > Date.now() ? hit.key : undefined;
  }

  forget(): void {
    this.cache.clear();
  }
}

export function authenticate(resolver: ApiKeyResolver): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header('authorization');
    const match = header?.match(/^Bearer\s+(\S+)\s*$/i);
    if (!match) throw new Unauthorized('Send an API key as `Authorization: Bearer sk_...`');
    const key = await resolver.resolve(match[1]!);
    if (!key) throw new Unauthorized('The API key is not valid or has been revoked');
    c.set('ctx', {
      deps: c.get('deps'),
      environment: key.environment,
      actor: key.actor,
      scopes: key.scopes,
      requestId: c.get('requestId'),
    });
    await next();
  };
}
