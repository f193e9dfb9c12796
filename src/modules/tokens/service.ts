import { type JWK, SignJWT } from 'jose';
import type { Ctx } from '../../platform/context.ts';
import { requireScope, withTransaction } from '../../platform/context.ts';
import { NotFound } from '../../platform/errors.ts';
import { listEntitlements } from '../entitlements/service.ts';
import { activeSigningKey, forgetActiveKey, publicKeys, rotateKeys } from './keys.ts';

export const DEFAULT_TOKEN_TTL_SECONDS = 300;

/** A metered feature in a token: its quota as of issue time (null limit: unlimited). */
export interface TokenQuota {
  limit: number | null;
  remaining: number | null;
  resets_at: string | null;
}

/** What a token says of one feature: `true` (boolean), the config value (any JSON), or a quota. */
export type TokenEntitlement = true | TokenQuota | unknown;

export interface IssuedToken {
  token: string;
  expires_at: string;
}

/**
 * `POST /v1/customers/{customer_id}/token`: the customer's entitlements as of now, signed with the
 * environment's active key. Only features the customer has access to are in `ent`; an edge check
 * of a feature not there is a denial.
 */
export async function issueToken(
  ctx: Ctx,
  customerId: string,
  input: { ttl_seconds?: number | undefined },
): Promise<IssuedToken> {
  requireScope(ctx, 'check');
  const listing = await listEntitlements(ctx, customerId);
  if (!listing) throw new NotFound('customer', customerId);
  const ent: Record<string, TokenEntitlement> = {};
  for (const e of listing.entitlements) {
    if (!e.has_access) continue;
    if (e.type === 'boolean') ent[e.feature] = true;
    else if (e.type === 'config') ent[e.feature] = e.value ?? null;
    else
      ent[e.feature] = {
        limit: e.limit ?? null,
        remaining: e.remaining ?? null,
        resets_at: e.resets_at ?? null,
      };
  }
  const iat = Math.floor(ctx.deps.clock.now().getTime() / 1000);
  const exp = iat + (input.ttl_seconds ?? DEFAULT_TOKEN_TTL_SECONDS);
  const key = await activeSigningKey(ctx.deps, ctx.environment);
  const token = await new SignJWT({ ver: listing.version, ent })
    .setProtectedHeader({ alg: 'EdDSA', typ: 'JWT', kid: key.kid })
    .setIssuer(ctx.deps.config.tokenIssuer)
    .setSubject(customerId)
    .setAudience(ctx.environment)
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(key.privateKey);
  return { token, expires_at: new Date(exp * 1000).toISOString() };
}

/** `POST /v1/signing-keys/rotate`: admin only, audited; tokens of the old key stay valid. */
export async function rotateSigningKey(
  ctx: Ctx,
): Promise<{ kid: string; retired_kid: string | null; retired_key_leaves_jwks_at: string | null }> {
  requireScope(ctx, 'admin');
  const result = await withTransaction(ctx, async (t) => {
    const rotated = await rotateKeys(t);
    t.audit({
      action: 'signing_key.rotated',
      target: { type: 'environment', id: ctx.environment },
      before: rotated.retired_kid ? { active_kid: rotated.retired_kid } : null,
      after: { active_kid: rotated.kid, retired_key_leaves_jwks_at: rotated.retired_key_leaves_jwks_at },
    });
    return rotated;
  });
  forgetActiveKey(ctx.deps, ctx.environment);
  return result;
}

/** `GET /.well-known/jwks.json`: public, every environment's keys that may have signed a live token. */
export async function jwks(deps: Ctx['deps']): Promise<{ keys: JWK[] }> {
  return { keys: await publicKeys(deps, deps.clock.now()) };
}
