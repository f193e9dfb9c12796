import { type FastRoute, parseJsonObject } from '../../platform/fast-path.ts';
import { MAX_BATCH, type UsageEventInput } from './schema.ts';
import { recordUsage, recordUsageBatch } from './service.ts';

/**
 * `POST /v1/usage` and `/v1/usage/batch` on the node:http fast path (src/platform/fast-path.ts):
 * the same service verbs as the Hono routes; anything else is answered by the app. Handing over
 * after a failure cannot count twice: the app sends the same events with the same idempotency keys.
 */
export const usageFastRoutes: [FastRoute<UsageEventInput>, FastRoute<unknown[]>] = [
  { path: '/v1/usage', maxBody: 16 * 1024, scope: 'check', parse: parseUsageEvent, run: recordUsage },
  {
    path: '/v1/usage/batch',
    maxBody: 1024 * 1024,
    scope: 'check',
    parse: parseUsageBatch,
    run: async (ctx, events) => ({ results: await recordUsageBatch(ctx, events) }),
  },
];

const text = (v: unknown, max: number): v is string =>
  typeof v === 'string' && v.length >= 1 && v.length <= max;

/** The UsageEvent schema's rules, checked by hand; null means "let the validating route answer". */
export function parseUsageEvent(body: Buffer | Record<string, unknown>): UsageEventInput | null {
  const value = Buffer.isBuffer(body) ? parseJsonObject(body) : body;
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
  const value = parseJsonObject(body);
  if (value === null) return null;
  const { events, ...rest } = value;
  for (const _ in rest) return null;
  if (!Array.isArray(events) || events.length < 1 || events.length > MAX_BATCH) return null;
  return events;
}
