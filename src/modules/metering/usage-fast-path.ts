import type { Ctx } from '../../platform/context.ts';
import { type FastRoute, JsonText, parseJsonObject } from '../../platform/fast-path.ts';
import { isoOf } from './answer.ts';
import { parseUsageEvent } from './parse-event.ts';
import { MAX_BATCH, type UsageEventInput } from './schema.ts';
import { recordBatch, recordUsage } from './service.ts';
import type { UsageAnswer } from './store.ts';

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
    run: recordUsageBatchBody,
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

/**
 * `POST /v1/usage/batch`'s body, `{"results": [...]}`, put together from each answer's JSON text
 * (no object made per answer to be serialised): the same text as the app's
 * `JSON.stringify({ results: await recordUsageBatch(ctx, events) })` (tested).
 */
async function recordUsageBatchBody(ctx: Ctx, events: unknown[]): Promise<JsonText> {
  const { prepared, answers } = await recordBatch(ctx, events);
  let next = 0;
  let body = '{"results":[';
  for (let i = 0; i < prepared.length; i++) {
    const p = prepared[i]!;
    if (i > 0) body += ',';
    if (p.kind === 'event') body += answerJsonText(answers[next++]!);
    else body += JSON.stringify(p.kind === 'error' ? { error: p.error } : p.result);
  }
  return new JsonText(`${body}]}`);
}

/** An answer's JSON, the same text as `JSON.stringify(answerJson(answer))` (property-tested). */
export function answerJsonText(a: UsageAnswer): string {
  return `{"accepted":${a.accepted}${a.reason ? `,"reason":${JSON.stringify(a.reason)}` : ''},"used":${a.used},"limit":${a.limit},"remaining":${a.remaining},"resets_at":${a.resetsAt === null ? 'null' : `"${isoOf(a.resetsAt)}"`},"period_start":"${isoOf(a.periodStart)}","overage":${a.overage},"credit_used":${a.creditUsed}}`;
}
