import { isUtf8 } from 'node:buffer';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Histogram } from 'prom-client';
import type { ApiKeyResolver, ResolvedKey } from './auth.ts';
import { type AuthBrake, clientAddress } from './auth-brake.ts';
import type { AppDeps, Ctx, Scope } from './context.ts';
import { requestIdFactory } from './ids.ts';
import { findViolation } from './input-rules.ts';
import type { Tally } from './metrics.ts';
import { chargedRequests, type RateDecision, type RateLimiter, rateLimitHeaders } from './rate-limit.ts';
import { hstsHeader, NOSNIFF } from './response-headers.ts';

/**
 * A JSON POST route answered straight on node:http, for the request shapes product backends send
 * thousands of times a second. The route's service verb is the same one its Hono route calls.
 */
export interface FastRoute<T> {
  path: string;
  maxBody: number;
  scope: Scope;
  /** The route schema's rules checked by hand; null hands the request to the validating app. */
  parse(body: Buffer): T | null;
  run(ctx: Ctx, input: T): Promise<unknown>;
}

interface Entry {
  // biome-ignore lint/suspicious/noExplicitAny: routes differ in their input type; each is typed where it is defined
  route: FastRoute<any>;
  ok: Tally;
  duration: Histogram.Internal<string>;
  served: Tally;
  handedOver: Tally;
  /** The route's own bound, never above the server's TESSERA_MAX_BODY_BYTES. */
  maxBody: number;
}

export type Fallback = (req: IncomingMessage, res: ServerResponse, body?: Buffer) => void;

/**
 * Takes a request only when its shape is the common one: a bearer key, a JSON body of known
 * length, no Idempotency-Key, X-Request-Id or Origin. Everything else, and every error, goes to the full
 * app, so error answers have one source. Returns false when the request is not taken (the caller
 * then hands it to the app untouched).
 *
 * A key the cache knows is used at once. A key it cannot vouch for (its entry lapsed after a quiet
 * spell, or this process has not seen it yet) is looked up once for every request that brought it
 * meanwhile, and those requests are then answered here as usual. Only a key that turns out not to
 * be valid for the route goes to the app, which answers 401 or 403. Handing every request of a
 * burst to the app while the key is looked up would put the whole burst on the slow path.
 */
export function createFastPath(
  deps: AppDeps,
  resolver: ApiKeyResolver,
  // biome-ignore lint/suspicious/noExplicitAny: routes differ in their input type; each is typed where it is defined
  routes: FastRoute<any>[],
  fallback: Fallback,
  brake?: { brake: AuthBrake; trustProxy: boolean; limiter?: RateLimiter },
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const addressOf = (req: IncomingMessage) =>
    clientAddress(
      req.socket.remoteAddress,
      headerText(req.headers['x-forwarded-for']),
      brake?.trustProxy ?? false,
    );
  const nextRequestId = requestIdFactory();
  const limiter = brake?.limiter;
  const hsts = hstsHeader(deps.config.hstsSeconds);
  const maxBodyOf = (route: FastRoute<unknown>) => Math.min(route.maxBody, deps.config.maxBodyBytes);
  const byPath = new Map<string, Entry>(
    routes.map((route) => [
      route.path,
      {
        route,
        ok: deps.metrics.tally(deps.metrics.httpRequests, {
          method: 'POST',
          route: route.path,
          status: '200',
        }),
        duration: deps.metrics.httpDuration.labels({ method: 'POST', route: route.path }),
        served: deps.metrics.tally(deps.metrics.fastPath, { route: route.path, outcome: 'served' }),
        handedOver: deps.metrics.tally(deps.metrics.fastPath, { route: route.path, outcome: 'handed_over' }),
        maxBody: maxBodyOf(route),
      },
    ]),
  );

  return (req, res) => {
    if (req.method !== 'POST') return false;
    const entry = byPath.get(req.url ?? '');
    if (!entry) return false;
    const { route } = entry;
    const h = req.headers;
    // A browser's request (it sends Origin) goes to the app, which answers CORS.
    if (h['idempotency-key'] !== undefined || h['x-request-id'] !== undefined || h.origin !== undefined)
      return false;
    if (h['content-type'] !== 'application/json' || h['transfer-encoding'] !== undefined) return false;
    const length = Number(h['content-length']);
    if (!(length > 0 && length <= entry.maxBody)) return false;
    const auth = h.authorization;
    if (auth === undefined || !auth.startsWith('Bearer ')) return false;
    const secret = auth.slice(7);
    const key = resolver.peek(secret);
    if (key === null || (key !== undefined && !allows(key, route.scope))) return false;
    // A key the cache cannot vouch for, from an address the brake holds back: the app answers 429.
    if (key === undefined && brake !== undefined && brake.brake.retryAfter(addressOf(req)) > 0) return false;

    // A rate-limited key's request costs a token here; a refused one goes to the app, which answers 429.
    let limits: RateDecision | null = null;
    if (key !== undefined && key.rateLimit > 0 && limiter !== undefined) {
      limits = limiter.take(key.id, key.rateLimit);
      if (!limits.allowed) return false;
    }

    const started = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    if (key !== undefined) {
      req.on('end', () => answer(entry, key, limits, req, res, joined(chunks), started));
      return true;
    }
    // Settled at once: a failed look-up must not be an unhandled rejection while the body is read.
    // The app then tries again and answers the failure.
    const lookUp = resolver.resolve(secret).catch(() => null);
    req.on('end', () => {
      const body = joined(chunks);
      void lookUp.then((found) => {
        if (found === null || !allows(found, route.scope)) return handOver(entry, req, res, body, null);
        const taken =
          found.rateLimit > 0 && limiter !== undefined ? limiter.take(found.id, found.rateLimit) : null;
        if (taken !== null && !taken.allowed) return handOver(entry, req, res, body, taken);
        answer(entry, found, taken, req, res, body, started);
      });
    });
    return true;
  };

  function headerText(value: string | string[] | undefined): string | undefined {
    return Array.isArray(value) ? value.join(', ') : value;
  }

  function allows(key: ResolvedKey, scope: Scope): boolean {
    return key.scopes.has(scope) || key.scopes.has('admin');
  }

  function joined(chunks: Buffer[]): Buffer {
    return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  }

  // Declared functions, not closures made per request: this is the path every check takes.
  function answer(
    entry: Entry,
    key: ResolvedKey,
    limits: RateDecision | null,
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    started: number,
  ): void {
    const input = entry.route.parse(body);
    if (input === null) {
      handOver(entry, req, res, body, limits);
      return;
    }
    const requestId = nextRequestId();
    const ctx: Ctx = {
      deps,
      environment: key.environment,
      actor: key.actor,
      scopes: key.scopes,
      requestId,
    };
    entry.route.run(ctx, input).then(
      (result) => {
        const { json, length } = serialize(result);
        if (hsts !== null) res.setHeader(hsts.name, hsts.value);
        if (limits === null)
          res.writeHead(200, {
            'content-type': 'application/json',
            'content-length': length,
            'x-request-id': requestId,
            [NOSNIFF.name]: NOSNIFF.value,
          });
        else
          res.writeHead(200, {
            'content-type': 'application/json',
            'content-length': length,
            'x-request-id': requestId,
            [NOSNIFF.name]: NOSNIFF.value,
            ...rateLimitHeaders(limits),
          });
        res.end(json);
        entry.ok.inc();
        entry.served.inc();
        entry.duration.observe((performance.now() - started) / 1000);
      },
      // A failure is answered by the full app, which maps it to problem+json (and logs it).
      () => handOver(entry, req, res, body, limits),
    );
  }

  /** `limits`: what the request already cost its key here, so the app does not charge it again. */
  function handOver(
    entry: Entry,
    req: IncomingMessage,
    res: ServerResponse,
    body: Buffer,
    limits: RateDecision | null,
  ): void {
    if (limits !== null) chargedRequests.set(req, limits);
    entry.handedOver.inc();
    fallback(req, res, body);
  }
}

/** A result already in JSON: sent as it is. */
export class JsonText {
  constructor(readonly json: string) {}
}

const serialized = new WeakMap<object, { json: string; length: number }>();

/**
 * A frozen result is a memoised answer handed out again and again (see `checkEntitlement`): its
 * JSON is made once. A `JsonText` is sent as it is. Anything else is serialised afresh.
 */
function serialize(result: unknown): { json: string; length: number } {
  if (result instanceof JsonText) return { json: result.json, length: Buffer.byteLength(result.json) };
  const frozen = typeof result === 'object' && result !== null && Object.isFrozen(result);
  let out = frozen ? serialized.get(result) : undefined;
  if (out === undefined) {
    const json = JSON.stringify(result);
    out = { json, length: Buffer.byteLength(json) };
    if (frozen) serialized.set(result, out);
  }
  return out;
}

/**
 * A JSON object that passes the input rule (src/platform/input-rules.ts), or null for anything
 * else (the app then answers the request, with the 400 naming the field). Decoded UTF-8 can hold
 * a NUL or an unpaired surrogate only through a `\u` escape, so the walk runs only when the text
 * has one; bytes that were not UTF-8 show as U+FFFD.
 */
export function parseJsonObject(body: Buffer): Record<string, unknown> | null {
  try {
    const text = body.toString('utf8');
    if (text.includes('\uFFFD') && !isUtf8(body)) return null;
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
    if (text.includes('\\u') && findViolation(value) !== null) return null;
    return value as Record<string, unknown>;
  } catch {
    return null;
  }
}
