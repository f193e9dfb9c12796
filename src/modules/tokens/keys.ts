import { randomUUID, type webcrypto } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { sql } from 'kysely';
import type { AppDeps, TxCtx } from '../../platform/context.ts';
import type { Executor } from '../../platform/db.ts';
import { ServiceUnavailable } from '../../platform/errors.ts';
import { SecretBox, SecretBoxError } from '../../platform/secret-box.ts';

/** The longest a token may live: a retired key stays in the JWKS this long after its rotation. */
export const MAX_TOKEN_TTL_SECONDS = 3600;
/**
 * How long a process keeps using the active key it read before reading it again. Another node may
 * sign with a just-retired key for this long, so a retired key stays in the JWKS this much longer.
 */
export const ACTIVE_KEY_CACHE_SECONDS = 10;

const PURPOSE = 'token signing keys';

export interface ActiveSigningKey {
  kid: string;
  privateKey: webcrypto.CryptoKey;
}

type Cached = { key: ActiveSigningKey; readAt: number };
/** Per process, per environment: the active key, opened and imported once. */
const caches = new WeakMap<AppDeps, Map<string, Cached>>();

function cacheOf(deps: AppDeps): Map<string, Cached> {
  let cache = caches.get(deps);
  if (!cache) {
    cache = new Map();
    caches.set(deps, cache);
  }
  return cache;
}

function box(deps: Pick<AppDeps, 'secrets'>): SecretBox {
  return new SecretBox(deps.secrets, PURPOSE);
}

/** Drops this process's cached active key of an environment (after a rotation here). */
export function forgetActiveKey(deps: AppDeps, environment: string): void {
  cacheOf(deps).delete(environment);
}

/**
 * The environment's active signing key; the first use creates it. Two processes racing on the
 * first use agree on one key: the partial unique index admits one active key per environment.
 */
export async function activeSigningKey(deps: AppDeps, environment: string): Promise<ActiveSigningKey> {
  const cache = cacheOf(deps);
  const now = deps.clock.now().getTime();
  const cached = cache.get(environment);
  if (cached && now - cached.readAt < ACTIVE_KEY_CACHE_SECONDS * 1000) return cached.key;
  let row = await readActive(deps, environment);
  if (!row) {
    await insertKey(deps, deps.db, environment, deps.clock.now(), true);
    row = await readActive(deps, environment);
    if (!row) throw new Error(`no active signing key in ${environment}`);
  }
  let sealed: string;
  try {
    sealed = box(deps).open(row.private_key, environment);
  } catch (err) {
    if (!(err instanceof SecretBoxError)) throw err;
    throw new ServiceUnavailable(
      `The signing key cannot be opened (${err.message}): rotate the signing keys (POST /v1/signing-keys/rotate)`,
    );
  }
  const jwk = JSON.parse(sealed) as JWK;
  const privateKey = (await importJWK(jwk, 'EdDSA')) as webcrypto.CryptoKey;
  const key = { kid: row.id, privateKey };
  cache.set(environment, { key, readAt: now });
  return key;
}

function readActive(deps: AppDeps, environment: string) {
  return deps.db
    .selectFrom('signing_keys')
    .select(['id', 'private_key'])
    .where('environment', '=', environment)
    .where('retired_at', 'is', null)
    .executeTakeFirst();
}

/** A new Ed25519 key, its private half sealed; `ignoreConflict` lets a racing first use lose quietly. */
export async function insertKey(
  deps: Pick<AppDeps, 'secrets'>,
  db: Executor,
  environment: string,
  now: Date,
  ignoreConflict = false,
): Promise<string> {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const kid = `key_${randomUUID().replaceAll('-', '')}`;
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' };
  const privateJwk = await exportJWK(privateKey);
  const insert = db.insertInto('signing_keys').values({
    id: kid,
    environment,
    public_jwk: JSON.stringify(publicJwk),
    private_key: box(deps).seal(JSON.stringify(privateJwk), environment),
    created_at: now,
  });
  if (ignoreConflict) {
    await insert
      .onConflict((oc) => oc.column('environment').where('retired_at', 'is', null).doNothing())
      .execute();
  } else {
    await insert.execute();
  }
  return kid;
}

/** Every public key that may have signed a token still live at `now`, across environments. */
export async function publicKeys(deps: AppDeps, now: Date): Promise<JWK[]> {
  const rows = await deps.db
    .selectFrom('signing_keys')
    .select('public_jwk')
    .where((eb) => eb.or([eb('expires_from_jwks_at', 'is', null), eb('expires_from_jwks_at', '>', now)]))
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return rows.map((r) => r.public_jwk);
}

/** Retires the active key (it stays in the JWKS until its tokens have expired) and makes a new one. */
export async function rotateKeys(
  t: TxCtx,
): Promise<{ kid: string; retired_kid: string | null; retired_key_leaves_jwks_at: string | null }> {
  // Serialises rotations (and the first use) of one environment.
  await sql`SELECT pg_advisory_xact_lock(hashtext(${`signing_keys:${t.environment}`}))`.execute(t.tx);
  const leavesAt = new Date(t.now.getTime() + (MAX_TOKEN_TTL_SECONDS + ACTIVE_KEY_CACHE_SECONDS) * 1000);
  const retired = await t.tx
    .updateTable('signing_keys')
    .set({ retired_at: t.now, expires_from_jwks_at: leavesAt })
    .where('environment', '=', t.environment)
    .where('retired_at', 'is', null)
    .returning('id')
    .executeTakeFirst();
  const kid = await insertKey(t.deps, t.tx, t.environment, t.now);
  return {
    kid,
    retired_kid: retired?.id ?? null,
    retired_key_leaves_jwks_at: retired ? leavesAt.toISOString() : null,
  };
}
