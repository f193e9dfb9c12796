import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiKeyResolver } from '../../platform/auth.ts';
import type { AppDeps, Ctx } from '../../platform/context.ts';
import { requestIdFactory } from '../../platform/ids.ts';
import { type CheckInput, checkEntitlement } from './service.ts';

/**
 * `POST /v1/check` straight on node:http, for the request shape product backends send thousands of
 * times a second: a cached key with the `check` scope, a JSON body that is valid as it stands, no
 * Idempotency-Key. It calls the same service verb as the Hono route, so answers are identical;
 * anything else (bad input, unknown key, errors) is handed to the full app, which answers it, so
 * there is one source of truth for every error. Returns false when the request is not for it.
 */
export function createCheckFastPath(
  deps: AppDeps,
  resolver: ApiKeyResolver,
  fallback: (req: IncomingMessage, res: ServerResponse, body?: Buffer) => void,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const nextRequestId = requestIdFactory();
  const histogram = deps.metrics.httpDuration.labels({ method: 'POST', route: '/v1/check' });
  const ok = deps.metrics.httpRequests.labels({ method: 'POST', route: '/v1/check', status: '200' });
  const served = deps.metrics.checkFastPath.labels({ outcome: 'served' });
  const maxBody = 16 * 1024;

  return (req, res) => {
    if (req.method !== 'POST' || req.url !== '/v1/check') return false;
    const h = req.headers;
    if (h['idempotency-key'] !== undefined || h['x-request-id'] !== undefined) return false;
    if (h['content-type'] !== 'application/json' || h['transfer-encoding'] !== undefined) return false;
    const length = Number(h['content-length']);
    if (!(length > 0 && length <= maxBody)) return false;
    const auth = h.authorization;
    if (auth === undefined || !auth.startsWith('Bearer ')) return false;
    const key = resolver.peek(auth.slice(7));
    if (!key || !(key.scopes.has('check') || key.scopes.has('admin'))) return false;

    const started = performance.now();
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const input = parseCheck(body);
      if (!input) {
        deps.metrics.checkFastPath.inc({ outcome: 'handed_over' });
        fallback(req, res, body);
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
      checkEntitlement(ctx, input).then(
        (result) => {
          const json = JSON.stringify(result);
          res.writeHead(200, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(json),
            'x-request-id': requestId,
          });
          res.end(json);
          ok.inc();
          served.inc();
          histogram.observe((performance.now() - started) / 1000);
        },
        // A failure is answered by the full app, which maps it to problem+json (and logs it).
        () => {
          deps.metrics.checkFastPath.inc({ outcome: 'handed_over' });
          fallback(req, res, body);
        },
      );
    });
    return true;
  };
}

const SCALAR = new Set(['string', 'number', 'boolean']);

/** The CheckBody schema's rules, checked by hand; null means "let the validating route answer". */
export function parseCheck(body: Buffer): CheckInput | null {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const { customer_id, feature, quantity, context, ...rest } = value as Record<string, unknown>;
  for (const _ in rest) return null;
  if (typeof customer_id !== 'string' || customer_id.length < 1 || customer_id.length > 255) return null;
  if (typeof feature !== 'string' || feature.length < 1 || feature.length > 64) return null;
  if (quantity !== undefined && !(typeof quantity === 'number' && quantity > 0 && quantity <= 1e12))
    return null;
  if (context !== undefined) {
    if (typeof context !== 'object' || context === null || Array.isArray(context)) return null;
    const entries = Object.entries(context);
    if (entries.length > 50) return null;
    for (const [k, v] of entries) if (k.length > 100 || !SCALAR.has(typeof v)) return null;
  }
  return {
    customer_id,
    feature,
    ...(quantity !== undefined ? { quantity } : {}),
    ...(context !== undefined ? { context: context as CheckInput['context'] } : {}),
  };
}
