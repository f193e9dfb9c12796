import { createLocalJWKSet, createRemoteJWKSet, type JSONWebKeySet, jwtVerify } from 'jose';
import type {
  CustomerEntitlement,
  CustomerEntitlements,
  Decision,
  TokenClaims,
  TokenQuota,
} from './types.ts';

/** Answers a check from an entitlements snapshot, with no round trip. */
export function decideFromSnapshot(
  snapshot: CustomerEntitlements,
  feature: string,
  quantity = 1,
  stale = false,
): Decision {
  const row: CustomerEntitlement | undefined = snapshot.entitlements.find((e) => e.feature === feature);
  const base = {
    customer_id: snapshot.customer_id,
    feature,
    version: snapshot.version,
    source: 'snapshot',
    stale,
  };
  if (!row) return { ...base, allowed: false, reason: 'not_in_plan', sources: [] } as Decision;
  const fits = row.type !== 'metered' || row.remaining == null || row.remaining >= quantity;
  const allowed = row.has_access && fits;
  const decision: Decision = {
    ...base,
    source: 'snapshot',
    allowed,
    reason: allowed ? 'granted' : row.has_access ? 'limit_exceeded' : 'not_in_plan',
    type: row.type,
    sources: row.sources,
  };
  for (const k of ['value', 'limit', 'used', 'remaining', 'resets_at', 'overage_used'] as const) {
    if (row[k] !== undefined) (decision as unknown as Record<string, unknown>)[k] = row[k];
  }
  return decision;
}

/** A verified entitlements token: who it is for, until when, and what it grants. */
export interface VerifiedToken {
  customerId: string;
  environment: string;
  version: number;
  expiresAt: Date;
  claims: TokenClaims;
}

export interface VerifyOptions {
  /**
   * The keys: a JWKS document (its keys are imported once per object: pass a new object to change
   * them), or the URL of `/.well-known/jwks.json`.
   */
  jwks: JSONWebKeySet | URL;
  issuer?: string;
  /** The environment the token must be for (`test` or `live`). */
  audience?: string;
  /** Seconds of clock skew allowed (default 30). */
  clockTolerance?: number;
  /** The time to verify at (tests). */
  currentDate?: Date;
}

const remoteSets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();
/**
 * Key sets of JWKS documents, built once per document object: building one per call imports the
 * keys again on every verification. The document is read when first seen; pass a new object to
 * change the keys.
 */
const localSets = new WeakMap<JSONWebKeySet, ReturnType<typeof createLocalJWKSet>>();

/** Verifies an EdDSA entitlements token against the JWKS; throws when it is invalid or expired. */
export async function verifyEntitlementsToken(token: string, options: VerifyOptions): Promise<VerifiedToken> {
  let keys: ReturnType<typeof createLocalJWKSet> | ReturnType<typeof createRemoteJWKSet>;
  if (options.jwks instanceof URL) {
    const href = options.jwks.href;
    keys = remoteSets.get(href) ?? createRemoteJWKSet(options.jwks);
    remoteSets.set(href, keys as ReturnType<typeof createRemoteJWKSet>);
  } else {
    const found = localSets.get(options.jwks);
    keys = found ?? createLocalJWKSet(options.jwks);
    if (!found) localSets.set(options.jwks, keys);
  }
  const { payload } = await jwtVerify(token, keys, {
    algorithms: ['EdDSA'],
    clockTolerance: options.clockTolerance ?? 30,
    ...(options.issuer ? { issuer: options.issuer } : {}),
    ...(options.audience ? { audience: options.audience } : {}),
    ...(options.currentDate ? { currentDate: options.currentDate } : {}),
  });
  const claims = payload as unknown as TokenClaims;
  if (typeof claims.sub !== 'string' || typeof claims.ent !== 'object' || claims.ent === null) {
    throw new Error('entitlements token: missing sub or ent claim');
  }
  return {
    customerId: claims.sub,
    environment: String(claims.aud),
    version: Number(claims.ver),
    expiresAt: new Date(claims.exp * 1000),
    claims,
  };
}

function isQuota(v: unknown): v is TokenQuota {
  return typeof v === 'object' && v !== null && 'remaining' in v && 'limit' in v;
}

/**
 * Answers a check from a verified token. An absent feature is denied; `true` grants; a
 * `{limit, remaining, resets_at}` entry grants while `remaining` covers the quantity; any other
 * value is a config value and grants. The token's quota is as of its issue time.
 */
export function decideFromToken(token: VerifiedToken, feature: string, quantity = 1): Decision {
  const base = {
    customer_id: token.customerId,
    feature,
    version: token.version,
    sources: [],
    source: 'token' as const,
    stale: false,
  };
  if (!Object.hasOwn(token.claims.ent, feature)) return { ...base, allowed: false, reason: 'not_in_plan' };
  const entry = token.claims.ent[feature];
  if (entry === true) return { ...base, allowed: true, reason: 'granted', type: 'boolean' };
  if (isQuota(entry)) {
    const allowed = entry.remaining == null || entry.remaining >= quantity;
    return {
      ...base,
      allowed,
      reason: allowed ? 'granted' : 'limit_exceeded',
      type: 'metered',
      limit: entry.limit,
      remaining: entry.remaining,
      ...(entry.resets_at ? { resets_at: entry.resets_at } : {}),
    };
  }
  return { ...base, allowed: true, reason: 'granted', type: 'config', value: entry };
}
