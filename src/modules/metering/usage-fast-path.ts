import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiKeyResolver } from '../../platform/auth.ts';
import type { AppDeps, Ctx } from '../../platform/context.ts';
import { requestIdFactory } from '../../platform/ids.ts';
import { MAX_BATCH, type UsageEventInput } from './schema.ts';
import { recordUsage, recordUsageBatch } from './service.ts';

const ROUTES = new Map([
  ['/v1/usage', 16 * 1024],
  ['/v1/usage/batch', 1024 * 1024],
]);

/**
 * `POST /v1/usage` and `/v1/usage/batch` straight on node:http (as the check fast path does): a
 * cached key with the `check` scope, a JSON body valid as it stands, no Idempotency-Key header.
 * It calls the same service verbs as the Hono routes; anything else (bad input, unknown key, a
 * thrown error) is handed to the full app, which answers it. Handing over after a failure cannot
 * count twice: the app sends the same events with the same idempotency keys.
 */
export function createUsageFastPath(
  deps: AppDeps,
  resolver: ApiKeyResolver,
  fallback: (req: IncomingMessage, res: ServerResponse, body?: Buffer) => void,
): (req: IncomingMessage, res: ServerResponse) => boolean {
  const nextRequestId = requestIdFactory();
  return (req, res) => {
    const route = req.url ?? '';
    const maxBody = ROUTES.get(route);
    if (req.method !== 'POST' || maxBody === undefined) return false;
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
      const parsed = route === '/v1/usage' ? parseUsageEvent(body) : parseUsageBatch(body);
      if (parsed === null) {
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
      const work = Array.isArray(parsed)
        ? recordUsageBatch(ctx, parsed).then((results) => ({ results }))
        : recordUsage(ctx, parsed);
      work.then(
        (result) => {
          const json = JSON.stringify(result);
          res.writeHead(200, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(json),
            'x-request-id': requestId,
          });
          res.end(json);
          deps.metrics.httpRequests.inc({ method: 'POST', route, status: '200' });
          deps.metrics.httpDuration.observe({ method: 'POST', route }, (performance.now() - started) / 1000);
        },
        () => fallback(req, res, body),
      );
    });
    return true;
  };
}

function json(body: Buffer): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

const text = (v: unknown, max: number): v is string =>
  typeof v === 'string' && v.length >= 1 && v.length <= max;

/** The UsageEvent schema's rules, checked by hand; null means "let the validating route answer". */
export function parseUsageEvent(body: Buffer | Record<string, unknown>): UsageEventInput | null {
  const value = Buffer.isBuffer(body) ? json(body) : body;
  if (value === null) return null;
  const { customer_id, feature, value: amount, member, idempotency_key, timestamp, ...rest } = value;
  for (const _ in rest) return null;
  // Timestamps take the schema's full ISO-8601 check: the route does that.
  if (timestamp !== undefined) return null;
  if (!text(customer_id, 255) || !text(feature, 64) || !text(idempotency_key, 255)) return null;
  if (
    amount !== undefined &&
    !(Number.isInteger(amount) && (amount as number) >= 0 && (amount as number) <= 1e12)
  )
    return null;
  if (member !== undefined && !text(member, 255) && !(typeof member === 'number' && Number.isFinite(member)))
    return null;
  return {
    customer_id,
    feature,
    idempotency_key,
    ...(amount !== undefined ? { value: amount as number } : {}),
    ...(member !== undefined ? { member: member as string | number } : {}),
  };
}

/** `{events: [...]}` with 1 to 1,000 items; each item is validated by the service itself. */
export function parseUsageBatch(body: Buffer): unknown[] | null {
  const value = json(body);
  if (value === null) return null;
  const { events, ...rest } = value;
  for (const _ in rest) return null;
  if (!Array.isArray(events) || events.length < 1 || events.length > MAX_BATCH) return null;
  return events;
}
