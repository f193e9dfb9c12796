// Tessera edge worker: enforces entitlements from a signed token without a round trip to Tessera.
// Plain ES module with WebCrypto only (no bundle): verifies the EdDSA token against Tessera's JWKS,
// maps the request path to a required feature and forwards allowed requests to the origin.

const DEFAULT_COOKIE = 'tessera_token';
const DEFAULT_JWKS_MAX_AGE = 300;
const DEFAULT_JWKS_REFETCH = 30;

/** Per isolate: the JWKS by kid, when it was fetched, and when an unknown kid last caused a fetch. */
let jwksCache = { source: '', keys: new Map(), fetchedAt: -Infinity };

function seconds(value, fallback) {
  const n = Number(value);
  return value === undefined || value === '' || !Number.isFinite(n) || n < 0 ? fallback : n;
}

function parseRoutes(raw) {
  if (!raw) return [];
  const list = typeof raw === 'string' ? JSON.parse(raw) : raw;
  return list.map(({ pattern, feature }) => {
    const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*');
    // "/reports/*" also covers "/reports" itself.
    const re = pattern.endsWith('/*') ? `^${escaped.slice(0, -3)}(?:/.*)?$` : `^${escaped}$`;
    return { regex: new RegExp(re), feature };
  });
}

function problem(status, code, detail, extra = {}) {
  const body = {
    type: `https://tessera.dev/problems/${code}`,
    title: { 401: 'Unauthorized', 403: 'Forbidden' }[status] ?? 'Service Unavailable',
    status,
    code,
    detail,
    request_id: crypto.randomUUID(),
    ...extra,
  };
  const headers = { 'content-type': 'application/problem+json' };
  if (status === 401) headers['www-authenticate'] = 'Bearer';
  return new Response(JSON.stringify(body), { status, headers });
}

function tokenFrom(request, cookieName) {
  const auth = request.headers.get('authorization');
  if (auth) {
    const m = /^Bearer\s+(\S+)$/i.exec(auth);
    if (m) return m[1];
  }
  const cookie = request.headers.get('cookie');
  if (!cookie) return null;
  for (const part of cookie.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === cookieName) return decodeURIComponent(part.slice(i + 1).trim());
  }
  return null;
}

function b64urlBytes(s) {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error('not base64url');
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function b64urlJson(s) {
  return JSON.parse(new TextDecoder().decode(b64urlBytes(s)));
}

let inflight = null;

async function loadJwks(source) {
  const res = await fetch(source, { headers: { accept: 'application/json' } });
  if (!res.ok) throw new Error(`JWKS answered ${res.status}`);
  const body = await res.json();
  const keys = new Map();
  for (const jwk of body.keys ?? []) {
    if (jwk.kty !== 'OKP' || jwk.crv !== 'Ed25519' || typeof jwk.kid !== 'string') continue;
    keys.set(jwk.kid, { jwk, key: null });
  }
  jwksCache = { source, keys, fetchedAt: Date.now() };
}

/**
 * One fetch at a time per isolate. When Tessera cannot be reached, the keys already held stay in use
 * (their fetch time is reset so the next attempt waits a refetch interval); with none held it throws.
 */
async function fetchJwks(source) {
  inflight ??= loadJwks(source).finally(() => {
    inflight = null;
  });
  try {
    await inflight;
  } catch (err) {
    if (jwksCache.source !== source || jwksCache.keys.size === 0) throw err;
    jwksCache.fetchedAt = Date.now();
  }
}

/** The key for `kid`: from the cache while fresh; refetched when stale, or on an unknown kid (throttled). */
async function keyFor(env, kid) {
  const source = new URL('/.well-known/jwks.json', env.TESSERA_URL).toString();
  const maxAge = seconds(env.JWKS_MAX_AGE_SECONDS, DEFAULT_JWKS_MAX_AGE) * 1000;
  const refetchEvery = seconds(env.JWKS_REFETCH_SECONDS, DEFAULT_JWKS_REFETCH) * 1000;
  const age = Date.now() - jwksCache.fetchedAt;
  if (jwksCache.source !== source || age >= maxAge) await fetchJwks(source);
  else if (!jwksCache.keys.has(kid) && age >= refetchEvery) await fetchJwks(source);
  const entry = jwksCache.keys.get(kid);
  if (!entry) return null;
  entry.key ??= await crypto.subtle.importKey('jwk', entry.jwk, { name: 'Ed25519' }, false, ['verify']);
  return entry.key;
}

/** The token's claims, or null when it does not verify (signature, kid, exp, iss, aud). */
async function verifyToken(env, token) {
  const parts = token.split('.');
  if (parts.length !== 3) return null;
  let header;
  let claims;
  let signature;
  try {
    header = b64urlJson(parts[0]);
    claims = b64urlJson(parts[1]);
    signature = b64urlBytes(parts[2]);
  } catch {
    return null;
  }
  if (header?.alg !== 'EdDSA' || typeof header.kid !== 'string' || !claims || typeof claims !== 'object') {
    return null;
  }
  const key = await keyFor(env, header.kid);
  if (!key) return null;
  const ok = await crypto.subtle.verify(
    'Ed25519',
    key,
    signature,
    new TextEncoder().encode(`${parts[0]}.${parts[1]}`),
  );
  if (!ok) return null;
  const now = Math.floor(Date.now() / 1000);
  if (typeof claims.exp !== 'number' || claims.exp <= now) return null;
  if (env.ISSUER && claims.iss !== env.ISSUER) return null;
  if (env.AUDIENCE && claims.aud !== env.AUDIENCE) return null;
  return claims;
}

/** `true`, a config value, or a metered grant with something remaining (`remaining: null` is unlimited). */
function allows(grant) {
  if (!grant) return false;
  if (typeof grant === 'object' && 'remaining' in grant)
    return grant.remaining === null || grant.remaining > 0;
  return true;
}

let routesCache = { raw: undefined, routes: [] };

export default {
  async fetch(request, env) {
    if (!env.TESSERA_URL || !env.ORIGIN_URL) {
      return new Response('edge worker misconfigured: TESSERA_URL and ORIGIN_URL are required', {
        status: 500,
      });
    }
    if (routesCache.raw !== env.ROUTES) routesCache = { raw: env.ROUTES, routes: parseRoutes(env.ROUTES) };
    const token = tokenFrom(request, env.TOKEN_COOKIE || DEFAULT_COOKIE);
    if (!token) return problem(401, 'token_missing', 'An entitlement token is required.');
    let claims;
    try {
      claims = await verifyToken(env, token);
    } catch {
      return problem(503, 'jwks_unavailable', 'The signing keys could not be fetched from Tessera.');
    }
    if (!claims)
      return problem(401, 'token_invalid', 'The entitlement token does not verify or has expired.');

    const url = new URL(request.url);
    const route = routesCache.routes.find((r) => r.regex.test(url.pathname));
    if (route && !allows(claims.ent?.[route.feature])) {
      return problem(403, 'feature_not_entitled', `This needs the feature ${route.feature}.`, {
        feature: route.feature,
      });
    }
    const target = new URL(url.pathname + url.search, env.ORIGIN_URL);
    const headers = new Headers(request.headers);
    headers.set('x-tessera-customer', String(claims.sub));
    return fetch(
      new Request(target, { method: request.method, headers, body: request.body, redirect: 'manual' }),
    );
  },
};
