/**
 * The Stripe event store's verbs: process one stored event (claim it, apply it and record the
 * outcome in one transaction, or schedule a retry), list and read events, and replay a failed or
 * ignored one. The queue that drives processing lives in src/workers/stripe-events.ts.
 */
import type { Selectable } from 'kysely';
import type Stripe from 'stripe';
import type { Actor, AppDeps, Ctx } from '../../platform/context.ts';
import { reader, requireScope, systemContext, withTransaction } from '../../platform/context.ts';
import { BadRequest, Conflict, NotFound } from '../../platform/errors.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import { type ApplyOutcome, applyStripeEvent, PermanentStripeError } from './apply/index.ts';
import { type StripeConnection, stripeConnection } from './settings.ts';
import type { StripeEventStatus, StripeEventsTable } from './tables.ts';

export type ApplyStripeEvent = (
  ctx: Ctx,
  event: Stripe.Event,
  connection: StripeConnection,
) => Promise<ApplyOutcome>;

export interface ProcessingPolicy {
  /** Attempts before an event is `failed` (the first included). */
  maxAttempts: number;
  /** The wait after the first failed attempt; doubled after each next one, at most an hour. */
  backoffMs: number;
  /** How long a claim holds: a worker that died mid-way lets the event go after this. */
  leaseMs: number;
  apply: ApplyStripeEvent;
}

export const DEFAULT_PROCESSING: ProcessingPolicy = {
  maxAttempts: 8,
  backoffMs: 1_000,
  leaseMs: 5 * 60_000,
  apply: applyStripeEvent,
};

export type ProcessResult =
  | { result: 'applied' | 'ignored' }
  | { result: 'retry' | 'failed'; error: string }
  /** Not waiting (done, or claimed by another worker). */
  | { result: 'skipped' };

const MAX_BACKOFF_MS = 60 * 60_000;

export function retryDelayMs(policy: Pick<ProcessingPolicy, 'backoffMs'>, attempts: number): number {
  return Math.min(MAX_BACKOFF_MS, policy.backoffMs * 2 ** Math.max(0, attempts - 1));
}

const stripeActor = (eventId: string): Actor => ({ type: 'stripe', id: eventId, name: 'stripe' });

class LostClaim extends Error {}

/**
 * One attempt at one event. The claim (status `processing`, attempts + 1) commits on its own so a
 * crash is visible; the apply and the outcome commit together, so an event is applied at most once
 * per successful attempt. A thrown error is retried after a growing delay, or ends the event as
 * `failed` when it is a PermanentStripeError or the last attempt.
 */
export async function processStripeEvent(
  deps: AppDeps,
  environment: string,
  id: string,
  policy: ProcessingPolicy = DEFAULT_PROCESSING,
): Promise<ProcessResult> {
  const now = deps.clock.now();
  const claimed = await deps.db
    .updateTable('stripe_events')
    .set((eb) => ({
      status: 'processing' as const,
      attempts: eb('attempts', '+', 1),
      next_attempt_at: new Date(now.getTime() + policy.leaseMs),
    }))
    .where('environment', '=', environment)
    .where('id', '=', id)
    .where((eb) =>
      eb.or([
        eb('status', '=', 'received'),
        eb.and([eb('status', '=', 'processing'), eb('next_attempt_at', '<=', now)]),
      ]),
    )
    .returning(['payload', 'attempts', 'type'])
    .executeTakeFirst();
  if (!claimed) return { result: 'skipped' };
  const log = { environment, stripeEvent: id, type: claimed.type, attempt: claimed.attempts };
  const event = claimed.payload as unknown as Stripe.Event;
  try {
    const connection = await stripeConnection(deps, deps.db, environment);
    if (!connection) throw new PermanentStripeError('Stripe is not set up in this environment');
    const outcome = await withTransaction(systemContext(deps, environment, stripeActor(id)), async (t) => {
      const result = await policy.apply(t, event, connection);
      const recorded = await t.tx
        .updateTable('stripe_events')
        .set({
          status: result.outcome,
          detail: result.detail ?? null,
          last_error: null,
          processed_at: t.now,
          next_attempt_at: t.now,
        })
        .where('environment', '=', environment)
        .where('id', '=', id)
        .where('status', '=', 'processing')
        .where('attempts', '=', claimed.attempts)
        .executeTakeFirst();
      // The claim lapsed and another worker took the event: roll this attempt back.
      if (recorded.numUpdatedRows === 0n) throw new LostClaim();
      return result;
    });
    deps.logger.info({ ...log, outcome: outcome.outcome, detail: outcome.detail }, 'Stripe event processed');
    return { result: outcome.outcome };
  } catch (err) {
    if (err instanceof LostClaim) return { result: 'skipped' };
    const error = (err instanceof Error ? err.message : String(err)).slice(0, 2000) || 'error';
    const final = err instanceof PermanentStripeError || claimed.attempts >= policy.maxAttempts;
    const at = deps.clock.now();
    await deps.db
      .updateTable('stripe_events')
      .set(
        final
          ? { status: 'failed', last_error: error, processed_at: at, next_attempt_at: at }
          : {
              status: 'received',
              last_error: error,
              next_attempt_at: new Date(at.getTime() + retryDelayMs(policy, claimed.attempts)),
            },
      )
      .where('environment', '=', environment)
      .where('id', '=', id)
      .where('status', '=', 'processing')
      .where('attempts', '=', claimed.attempts)
      .execute();
    if (final)
      deps.logger.error({ ...log, err }, 'Stripe event failed: listed under status=failed for replay');
    else deps.logger.warn({ ...log, err }, 'Stripe event attempt failed: it will be retried');
    return { result: final ? 'failed' : 'retry', error };
  }
}

/** Waiting events that are due by `now` (first attempts, retries, and lapsed claims), oldest first. */
export async function dueStripeEvents(
  deps: AppDeps,
  now: Date,
  limit: number,
): Promise<{ environment: string; id: string }[]> {
  return deps.db
    .selectFrom('stripe_events')
    .select(['environment', 'id'])
    .where('status', 'in', ['received', 'processing'])
    .where('next_attempt_at', '<=', now)
    .orderBy('next_attempt_at')
    .limit(limit)
    .execute();
}

type EventRow = Selectable<StripeEventsTable>;

export interface StripeEventView {
  id: string;
  type: string;
  api_version: string | null;
  created: number;
  livemode: boolean;
  object_type: string | null;
  object_id: string | null;
  status: StripeEventStatus;
  attempts: number;
  last_error: string | null;
  detail: string | null;
  received_at: string;
  /** When a waiting event is tried next; null once it is done. */
  next_attempt_at: string | null;
  processed_at: string | null;
}

function viewOf(row: EventRow): StripeEventView {
  const waiting = row.status === 'received' || row.status === 'processing';
  return {
    id: row.id,
    type: row.type,
    api_version: row.api_version,
    created: Number(row.created),
    livemode: row.livemode,
    object_type: row.object_type,
    object_id: row.object_id,
    status: row.status,
    attempts: row.attempts,
    last_error: row.last_error,
    detail: row.detail,
    received_at: row.received_at.toISOString(),
    next_attempt_at: waiting ? row.next_attempt_at.toISOString() : null,
    processed_at: row.processed_at?.toISOString() ?? null,
  };
}

export interface StripeEventFilter {
  status?: StripeEventStatus | undefined;
  type?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

/** `GET /v1/stripe/events`: newest first. */
export async function listStripeEvents(
  ctx: Ctx,
  filter: StripeEventFilter,
): Promise<{ data: StripeEventView[]; next_cursor: string | null }> {
  requireScope(ctx, 'admin');
  const after = decodeCursor<{ t: string; id: string }>(filter.cursor, { t: 'string', id: 'string' });
  const at = after ? new Date(after.t) : null;
  if (at && Number.isNaN(at.getTime()))
    throw new BadRequest('invalid_cursor', 'The cursor is not valid', [
      { path: 'query.cursor', message: 'not a cursor this endpoint issued' },
    ]);
  let query = reader(ctx)
    .selectFrom('stripe_events')
    .selectAll()
    .where('environment', '=', ctx.environment)
    .orderBy('received_at', 'desc')
    .orderBy('id', 'desc')
    .limit(filter.limit + 1);
  if (filter.status) query = query.where('status', '=', filter.status);
  if (filter.type) query = query.where('type', '=', filter.type);
  if (after && at)
    query = query.where((eb) =>
      eb.or([eb('received_at', '<', at), eb.and([eb('received_at', '=', at), eb('id', '<', after.id)])]),
    );
  const rows = await query.execute();
  return page(
    rows,
    filter.limit,
    (row) => viewOf(row),
    (row) => ({ t: row.received_at.toISOString(), id: row.id }),
  );
}

/** `GET /v1/stripe/events/{id}`: with the event as Stripe sent it. */
export async function getStripeEvent(
  ctx: Ctx,
  id: string,
): Promise<StripeEventView & { payload: Record<string, unknown> }> {
  requireScope(ctx, 'admin');
  const row = await reader(ctx)
    .selectFrom('stripe_events')
    .selectAll()
    .where('environment', '=', ctx.environment)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) throw new NotFound('stripe event', id);
  return { ...viewOf(row), payload: row.payload };
}

/**
 * `POST /v1/stripe/events/{id}/replay`: a failed or ignored event waits to be processed again,
 * with a fresh set of attempts. Audited as `stripe.event_replayed`. An event that is waiting or
 * being processed answers 409, and so does an applied one (applying it twice is not a replay).
 */
export async function replayStripeEvent(ctx: Ctx, id: string): Promise<StripeEventView> {
  requireScope(ctx, 'admin');
  const row = await withTransaction(ctx, async (t) => {
    const before = await t.tx
      .selectFrom('stripe_events')
      .selectAll()
      .where('environment', '=', ctx.environment)
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    if (!before) throw new NotFound('stripe event', id);
    if (before.status === 'processing')
      throw new Conflict('stripe_event_processing', `Stripe event '${id}' is being processed right now`);
    if (before.status !== 'failed' && before.status !== 'ignored')
      throw new Conflict(
        'stripe_event_not_replayable',
        `Stripe event '${id}' is ${before.status}: only failed or ignored events are replayed`,
      );
    const after = await t.tx
      .updateTable('stripe_events')
      .set({ status: 'received', attempts: 0, next_attempt_at: t.now, processed_at: null })
      .where('environment', '=', ctx.environment)
      .where('id', '=', id)
      .returningAll()
      .executeTakeFirstOrThrow();
    t.audit({
      action: 'stripe.event_replayed',
      target: { type: 'stripe_event', id },
      before: {
        status: before.status,
        attempts: before.attempts,
        last_error: before.last_error,
        detail: before.detail,
      },
      after: { status: 'received', type: before.type },
    });
    return after;
  });
  try {
    await ctx.deps.services.stripeEvents.enqueue(ctx.environment, id);
  } catch (err) {
    ctx.deps.logger.warn({ err, stripeEvent: id }, 'could not enqueue a replayed Stripe event');
  }
  return viewOf(row);
}
