/**
 * Usage verbs: from a request (validated per event) to store calls. The decision engine's
 * snapshot gives the terms (terms.ts); events the customer is not entitled to are refused with
 * the decision's reason and never reach the store.
 */
import type { CustomerSnapshot } from '../../domain/types.ts';
import { type Ctx, requireScope } from '../../platform/context.ts';
import { Unprocessable } from '../../platform/errors.ts';
import { fieldErrors } from '../../platform/http.ts';
import { enforceInputRule } from '../../platform/input-rules.ts';
import { answerJson } from './answer.ts';
import { parseUsageEvent } from './parse-event.ts';
import { type EventError, UsageEventBody, type UsageEventInput, type UsageResult } from './schema.ts';
import type { UsageAnswer, UsageEvent } from './store.ts';
import { type TermsOutcome, usageTermsOf } from './terms.ts';

const MAX_FUTURE_MS = 5 * 60_000;

/** One event of a batch as the service took it: to the store, answered already, or refused. */
export type Prepared =
  | { kind: 'event'; event: UsageEvent }
  | { kind: 'answer'; result: UsageResult }
  | { kind: 'error'; error: EventError['error'] };

/** `POST /v1/usage`: one event; bad input is a 4xx naming the field. */
export async function recordUsage(ctx: Ctx, input: UsageEventInput): Promise<UsageResult> {
  requireScope(ctx, 'check');
  // The route has validated the body: straight to the snapshot and the store.
  const now = ctx.deps.clock.now();
  const snapshot = await ctx.deps.services.decisions.snapshot(ctx.environment, input.customer_id, now);
  const prepared = prepare(input, snapshot, now, '', 0);
  if (prepared.kind === 'error') {
    const { code, message, path } = prepared.error;
    throw new Unprocessable(code, message, [{ path, message }]);
  }
  if (prepared.kind === 'answer') return prepared.result;
  const [answer] = await ctx.deps.services.metering.store.record(ctx.environment, [prepared.event], now);
  return answerJson(answer!) as UsageResult;
}

/** `POST /v1/usage/batch`: results in order; a bad event gets its own error and spoils nothing. */
export async function recordUsageBatch(
  ctx: Ctx,
  events: unknown[],
): Promise<Array<UsageResult | EventError>> {
  const { prepared, answers } = await recordBatch(ctx, events);
  let next = 0;
  return prepared.map((p) => {
    if (p.kind === 'error') return { error: p.error };
    if (p.kind === 'answer') return p.result;
    return answerJson(answers[next++]!) as UsageResult;
  });
}

/**
 * A batch's events taken (`prepared`, in order) and the store's answers to those of them that
 * reached it (`answers`, in their order): what `recordUsageBatch` answers, before it is made JSON.
 */
export async function recordBatch(
  ctx: Ctx,
  events: unknown[],
): Promise<{ prepared: Prepared[]; answers: UsageAnswer[] }> {
  requireScope(ctx, 'check');
  const now = ctx.deps.clock.now();
  const prepared = await prepareAll(ctx, events, 'events', now);
  const accepted = eventsOf(prepared);
  const answers =
    accepted.length > 0 ? await ctx.deps.services.metering.store.record(ctx.environment, accepted, now) : [];
  return { prepared, answers };
}

function eventsOf(prepared: Prepared[]): UsageEvent[] {
  const events: UsageEvent[] = [];
  for (const p of prepared) if (p.kind === 'event') events.push(p.event);
  return events;
}

/** Validates each event and finds its terms (the customers' snapshots are loaded once each). */
async function prepareAll(ctx: Ctx, raw: unknown[], prefix: string, now: Date): Promise<Prepared[]> {
  const inputs = raw.map((item, i) => {
    const quick =
      typeof item === 'object' && item !== null && !Array.isArray(item)
        ? parseUsageEvent(item as Record<string, unknown>)
        : null;
    if (quick !== null) return quick;
    // The app's body reading has done this already; the fast path leaves it to the rare event
    // that is not flat, and its failure hands the batch to the app, which answers the 400.
    // A batch's event sits two levels down (`{events: [event]}`), so its depth counts from there.
    enforceInputRule(item, prefix ? `${prefix}[${i}]` : '', prefix ? 2 : 0);
    const parsed = UsageEventBody.safeParse(item);
    if (parsed.success) return parsed.data;
    const [first] = fieldErrors(parsed.error.issues, prefix ? `${prefix}[${i}]` : undefined);
    return {
      error: { code: 'validation_failed', message: first?.message ?? 'invalid', path: first?.path ?? '' },
    };
  });
  const { decisions } = ctx.deps.services;
  const snapshots = new Map<string, CustomerSnapshot>();
  // Most snapshots are cached: taken without an await; the others are loaded together.
  const missing = new Set<string>();
  for (const input of inputs) {
    if ('error' in input || snapshots.has(input.customer_id)) continue;
    const cached = decisions.cachedSnapshot(ctx.environment, input.customer_id);
    if (cached) snapshots.set(input.customer_id, cached);
    else missing.add(input.customer_id);
  }
  if (missing.size > 0)
    await Promise.all(
      [...missing].map(async (id) => snapshots.set(id, await decisions.snapshot(ctx.environment, id, now))),
    );
  return inputs.map((input, i) => {
    if ('error' in input) return { kind: 'error', error: input.error };
    return prepare(input, snapshots.get(input.customer_id)!, now, prefix, i);
  });
}

/**
 * An event's terms, or its error; errors name the field under `prefix` and the event's index
 * (e.g. `events[3].value`), made only when there is an error.
 */
function prepare(
  input: UsageEventInput,
  snapshot: CustomerSnapshot,
  now: Date,
  prefix: string,
  index: number,
): Prepared {
  const occurredAt = input.timestamp ? new Date(input.timestamp) : now;
  if (occurredAt.getTime() > now.getTime() + MAX_FUTURE_MS)
    return failure(
      prefix,
      index,
      'timestamp_in_future',
      'timestamp is more than 5 minutes in the future',
      'timestamp',
    );
  const outcome = usageTermsOf(snapshot, input.feature, occurredAt);
  if (outcome.kind !== 'metered') return refusal(outcome, input, prefix, index);
  const { feature, terms } = outcome;
  const unique = feature.aggregation === 'unique';
  if (unique && input.member === undefined)
    return failure(
      prefix,
      index,
      'member_required',
      `'${feature.key}' counts distinct members: send member`,
      'member',
    );
  if (!unique && input.member !== undefined)
    return failure(
      prefix,
      index,
      'member_not_allowed',
      'member applies to features with unique aggregation only',
      'member',
    );
  return {
    kind: 'event',
    event: {
      customerId: input.customer_id,
      feature: feature.key,
      idempotencyKey: input.idempotency_key,
      value: unique ? 1 : (input.value ?? 1),
      member: unique ? String(input.member) : null,
      occurredAt,
      terms,
    },
  };
}

function failure(prefix: string, index: number, code: string, message: string, field: string): Prepared {
  return { kind: 'error', error: { code, message, path: prefix ? `${prefix}[${index}].${field}` : field } };
}

function refusal(
  outcome: Exclude<TermsOutcome, { kind: 'metered' }>,
  input: UsageEventInput,
  prefix: string,
  index: number,
): Prepared {
  const fail = (code: string, message: string, field: string) => failure(prefix, index, code, message, field);
  switch (outcome.kind) {
    case 'unknown_customer':
      return fail('unknown_customer', `No customer '${input.customer_id}'`, 'customer_id');
    case 'unknown_feature':
      return fail('unknown_feature', `No active feature '${input.feature}'`, 'feature');
    case 'not_metered':
      return fail(
        'not_metered',
        `'${input.feature}' is a ${outcome.feature.type} feature, not metered`,
        'feature',
      );
    case 'denied':
      return {
        kind: 'answer',
        result: {
          accepted: false,
          reason: outcome.reason as UsageResult['reason'] & string,
          used: 0,
          limit: 0,
          remaining: 0,
          resets_at: null,
          period_start: new Date(0).toISOString(),
          overage: 0,
          credit_used: 0,
        },
      };
  }
}
