import { type FastRoute, parseJsonObject } from '../../platform/fast-path.ts';
import { parseUsageEvent } from './parse-event.ts';
import { MAX_BATCH, type UsageEventInput } from './schema.ts';
import { recordUsage, recordUsageBatchJson } from './service.ts';

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
    run: recordUsageBatchJson,
  },
];

/** `{events: [...]}` with 1 to 1,000 items; each item is validated by the service itself. */
export function parseUsageBatch(body: Buffer): unknown[] | null {
  const value = parseJsonObject(body);
  if (value === null) return null;
  const { events, ...rest } = value;
  for (const _ in rest) return null;
  if (!Array.isArray(events) || events.length < 1 || events.length > MAX_BATCH) return null;
  return events;
}
