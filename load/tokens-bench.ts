/**
 * `npm run bench -- tokens`: what an entitlements token costs where it is enforced, with no
 * Tessera server. An Ed25519 key is generated here and tokens shaped like Tessera's are signed
 * with it (API.md, section Tokens: iss, sub, aud, iat, exp, ver and an `ent` claim with a dozen
 * features of each kind: boolean, config value, quota). In one run, in alternating rounds:
 * - bare verify: jose `jwtVerify` with the public key imported once;
 * - SDK local mode: `verifyEntitlementsToken` (what `fromToken` calls) against a JWKS document,
 *   then `decideFromToken`, on a different token each iteration so the verify is paid each time;
 * - SDK local mode, token kept: `decideFromToken` on one verified token (the SDK does not cache by
 *   token string; a kept evaluator from `fromToken` is this case);
 * - edge-style check: read the header's `kid`, pick the key from a JWKS map (imported once),
 *   verify, look the feature up in `ent`. Implemented here: no edge worker module is in the tree.
 * BENCH_DURATION (seconds, default 20) is the whole run's length.
 */
import os from 'node:os';
import {
  type CryptoKey,
  decodeProtectedHeader,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JSONWebKeySet,
  type JWK,
  jwtVerify,
  SignJWT,
} from 'jose';
import { decideFromToken, verifyEntitlementsToken } from '../sdk/src/index.ts';

const ISSUER = 'https://tessera.example';
const AUDIENCE = 'live';
const KID = 'bench-key-1';

/** A dozen features of each kind, as the `ent` claim carries them. */
export function benchEntitlements(): Record<string, unknown> {
  const ent: Record<string, unknown> = {};
  for (let i = 0; i < 12; i++) {
    ent[`flag_${i}`] = true;
    ent[`config_${i}`] = i % 2 === 0 ? `tier-${i}` : i * 10;
    ent[`quota_${i}`] = {
      limit: 1000 * (i + 1),
      remaining: 500 * (i + 1),
      resets_at: '2027-01-01T00:00:00.000Z',
    };
  }
  return ent;
}

/** The features decided on, cycled: one of each kind. */
const DECIDED = ['flag_3', 'config_4', 'quota_5'];

export interface TokenFixture {
  publicKey: CryptoKey;
  jwks: JSONWebKeySet;
  tokens: string[];
}

/** A key pair, its JWKS (another key beside it, as during a rotation) and `count` distinct tokens. */
export async function tokenFixture(count: number): Promise<TokenFixture> {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const other = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const jwk = (k: CryptoKey, kid: string) =>
    exportJWK(k).then((j) => ({ ...j, kid, alg: 'EdDSA', use: 'sig' }));
  const jwks = { keys: [await jwk(other.publicKey, 'bench-key-0'), await jwk(publicKey, KID)] };
  const ent = benchEntitlements();
  const now = Math.floor(Date.now() / 1000);
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) {
    tokens.push(
      await new SignJWT({ ver: i + 1, ent })
        .setProtectedHeader({ alg: 'EdDSA', kid: KID, typ: 'JWT' })
        .setIssuer(ISSUER)
        .setSubject(`cust-${i}`)
        .setAudience(AUDIENCE)
        .setIssuedAt(now)
        .setExpirationTime(now + 3600)
        .sign(privateKey),
    );
  }
  return { publicKey, jwks, tokens };
}

/** One step of a loop; returns something so the work is not optimised away. */
type Step = (i: number) => Promise<unknown> | unknown;

export interface TokenLoops {
  bare: Step;
  local: Step;
  localKept: Step;
  edge: Step;
}

/** The four loops' steps over a fixture. */
export async function tokenLoops(f: TokenFixture): Promise<TokenLoops> {
  const n = f.tokens.length;
  const token = (i: number) => f.tokens[i % n] as string;
  const feature = (i: number) => DECIDED[i % DECIDED.length] as string;

  const kept = await verifyEntitlementsToken(token(0), { jwks: f.jwks, issuer: ISSUER, audience: AUDIENCE });

  // The edge's keys: imported once at start-up, looked up by kid per request.
  const edgeKeys = new Map<string, CryptoKey>();
  for (const k of f.jwks.keys) {
    if (k.kid) edgeKeys.set(k.kid, (await importJWK(k as JWK, 'EdDSA')) as CryptoKey);
  }

  return {
    bare: (i) => jwtVerify(token(i), f.publicKey, { algorithms: ['EdDSA'] }),
    local: async (i) => {
      const verified = await verifyEntitlementsToken(token(i), {
        jwks: f.jwks,
        issuer: ISSUER,
        audience: AUDIENCE,
      });
      return decideFromToken(verified, feature(i)).allowed;
    },
    localKept: (i) => decideFromToken(kept, feature(i)).allowed,
    edge: async (i) => {
      const t = token(i);
      const { kid } = decodeProtectedHeader(t);
      const key = kid === undefined ? undefined : edgeKeys.get(kid);
      if (!key) throw new Error('edge: unknown kid');
      const { payload } = await jwtVerify(t, key, {
        algorithms: ['EdDSA'],
        issuer: ISSUER,
        audience: AUDIENCE,
      });
      const ent = payload.ent as Record<string, unknown>;
      return Object.hasOwn(ent, feature(i)) && ent[feature(i)] !== false;
    },
  };
}

/** Runs `step` for about `ms` milliseconds; returns iterations done and the time taken. */
export async function timeLoop(step: Step, ms: number): Promise<{ ops: number; ms: number }> {
  const began = performance.now();
  const until = began + ms;
  let ops = 0;
  let sink = 0;
  for (;;) {
    for (let j = 0; j < 64; j++) {
      const r = step(ops);
      if (r instanceof Promise) await r;
      if (r) sink++;
      ops++;
    }
    if (performance.now() >= until) break;
  }
  if (sink < 0) throw new Error('unreachable');
  return { ops, ms: performance.now() - began };
}

export const LOOP_NAMES = {
  bare: 'bare jose `jwtVerify` (key imported once)',
  local: 'SDK local mode: verify + decide, a new token each time',
  localKept: 'SDK local mode: decide on a kept verified token',
  edge: 'edge-style check: kid lookup + verify + `ent` lookup',
} as const satisfies Record<keyof TokenLoops, string>;

export type LoopName = keyof typeof LOOP_NAMES;

export interface TokensResult {
  rounds: number;
  msPerLoop: number;
  /** ops/s per loop, one figure per round. */
  perRound: Record<LoopName, number[]>;
  /** ops/s per loop over all rounds (total ops / total time). */
  opsPerSecond: Record<LoopName, number>;
  /** Cost of a local-mode decision (new token) over the cost of a bare verify. */
  localOverBare: number;
  edgeOverBare: number;
  targetMet: boolean;
}

/** Runs the loops in alternation: `rounds` rounds, each loop `msPerLoop` per round. */
export async function runTokenLoops(
  opts: { rounds: number; msPerLoop: number; tokens?: number } = { rounds: 3, msPerLoop: 1500 },
): Promise<TokensResult> {
  const fixture = await tokenFixture(opts.tokens ?? 1000);
  const loops = await tokenLoops(fixture);
  const names = Object.keys(LOOP_NAMES) as LoopName[];
  // Warm up each loop (JIT, key caches) before measuring.
  for (const name of names) await timeLoop(loops[name], Math.min(200, opts.msPerLoop));
  const perRound = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<LoopName, number[]>;
  const totals = Object.fromEntries(names.map((n) => [n, { ops: 0, ms: 0 }])) as Record<
    LoopName,
    { ops: number; ms: number }
  >;
  for (let round = 0; round < opts.rounds; round++) {
    for (const name of names) {
      const r = await timeLoop(loops[name], opts.msPerLoop);
      perRound[name].push((r.ops * 1000) / r.ms);
      totals[name].ops += r.ops;
      totals[name].ms += r.ms;
    }
  }
  const opsPerSecond = Object.fromEntries(
    names.map((n) => [n, (totals[n].ops * 1000) / totals[n].ms]),
  ) as Record<LoopName, number>;
  const localOverBare = opsPerSecond.bare / opsPerSecond.local;
  return {
    rounds: opts.rounds,
    msPerLoop: opts.msPerLoop,
    perRound,
    opsPerSecond,
    localOverBare,
    edgeOverBare: opsPerSecond.bare / opsPerSecond.edge,
    targetMet: localOverBare <= 2,
  };
}

export function formatTokensReport(r: TokensResult): string {
  const fmt = (n: number) => Math.round(n).toLocaleString('en');
  const rows = (Object.keys(LOOP_NAMES) as LoopName[]).map(
    (n) =>
      `| ${LOOP_NAMES[n]} | ${fmt(r.opsPerSecond[n])} | ${(1e6 / r.opsPerSecond[n]).toFixed(2)} | ${r.perRound[n].map(fmt).join(' / ')} |`,
  );
  return [
    `## Tokens (${new Date().toISOString()})`,
    '',
    `Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}, one process. ${r.rounds} rounds, each loop ${(r.msPerLoop / 1000).toFixed(1)} s per round, in alternation. Ed25519 tokens with 36 features (12 boolean, 12 config, 12 quota).`,
    '',
    '| loop | ops/s | µs per op | per round |',
    '|---|---:|---:|---|',
    ...rows,
    '',
    `Local mode / bare verify cost: **${r.localOverBare.toFixed(2)}x** (target ≤ 2x: ${r.targetMet ? 'met' : 'NOT met'}). Edge-style / bare verify: ${r.edgeOverBare.toFixed(2)}x.`,
    '',
    '```json',
    JSON.stringify(r),
    '```',
  ].join('\n');
}

export async function runTokensBench(s: { duration: number }): Promise<string> {
  const rounds = 3;
  const loops = Object.keys(LOOP_NAMES).length;
  const msPerLoop = Math.max(200, Math.round((s.duration * 1000) / (rounds * loops)));
  return formatTokensReport(await runTokenLoops({ rounds, msPerLoop }));
}
