/**
 * Reservation verbs: hold an amount now (it counts as used for everyone), then commit what was
 * really used (the rest is released) or release it all. A hold not settled by `expires_at` is
 * released on its own.
 */
import type { Ctx } from '../../platform/context.ts';
import { requireScope } from '../../platform/context.ts';
import { Conflict, NotFound, Unprocessable } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { answerJson } from './answer.ts';
import type { CreateReservationInput, ReservationResource, UsageResult } from './schema.ts';
import type { Reservation, UsageAnswer, UsageTerms } from './store.ts';
import { usageTermsOf } from './terms.ts';

export async function createReservation(
  ctx: Ctx,
  input: CreateReservationInput,
): Promise<ReservationResource> {
  requireScope(ctx, 'check');
  const now = ctx.deps.clock.now();
  const snapshot = await ctx.deps.services.decisions.snapshot(ctx.environment, input.customer_id, now);
  const outcome = usageTermsOf(snapshot, input.feature, now);
  const invalid = (code: string, message: string, path: string) =>
    new Unprocessable(code, message, [{ path, message }]);
  switch (outcome.kind) {
    case 'unknown_customer':
      throw invalid('unknown_customer', `No customer '${input.customer_id}'`, 'customer_id');
    case 'unknown_feature':
      throw invalid('unknown_feature', `No active feature '${input.feature}'`, 'feature');
    case 'not_metered':
      throw invalid('not_metered', `'${input.feature}' is not metered`, 'feature');
    case 'denied':
      throw new Conflict(outcome.reason, `The customer may not use '${input.feature}' (${outcome.reason})`);
    case 'metered':
      break;
  }
  if (outcome.terms.aggregation !== 'sum')
    throw invalid('not_reservable', 'Only features with sum aggregation can be reserved', 'feature');
  const expiresAt = new Date(now.getTime() + input.ttl_seconds * 1000);
  const held = await ctx.deps.services.metering.store.hold(
    ctx.environment,
    {
      id: newId('res', now.getTime()),
      customerId: input.customer_id,
      feature: input.feature,
      amount: input.amount,
      expiresAt,
      terms: outcome.terms,
    },
    now,
  );
  if (!held.held)
    throw new Conflict('limit_exceeded', `Only ${held.answer.remaining} of '${input.feature}' remains`);
  return resource(held.reservation, now, held.answer);
}

export async function commitReservation(
  ctx: Ctx,
  id: string,
  amount: number | undefined,
): Promise<ReservationResource> {
  requireScope(ctx, 'check');
  const now = ctx.deps.clock.now();
  const reservation = await heldReservation(ctx, id, now);
  const committed = amount ?? reservation.amount;
  if (committed > reservation.amount)
    throw new Unprocessable('amount_exceeds_reservation', `At most ${reservation.amount} can be committed`, [
      { path: 'amount', message: `must be at most the reserved ${reservation.amount}` },
    ]);
  const snapshot = await ctx.deps.services.decisions.snapshot(ctx.environment, reservation.customerId, now);
  const outcome = usageTermsOf(snapshot, reservation.feature, now);
  // Reserved usage is committed even if the customer lost the feature since: it was promised.
  const terms: UsageTerms =
    outcome.kind === 'metered'
      ? { ...outcome.terms, period: reservation.period }
      : {
          aggregation: 'sum',
          limit: null,
          overage: 'allow',
          thresholds: [],
          grants: [],
          period: reservation.period,
        };
  const result = await ctx.deps.services.metering.store.commit(
    ctx.environment,
    reservation,
    committed,
    terms,
    now,
  );
  if (!result.committed) throw notHeld(result.reservation);
  return resource(result.reservation, now, result.answer);
}

export async function releaseReservation(ctx: Ctx, id: string): Promise<ReservationResource> {
  requireScope(ctx, 'check');
  const now = ctx.deps.clock.now();
  const reservation = await heldReservation(ctx, id, now);
  const released = await ctx.deps.services.metering.store.release(ctx.environment, reservation, now);
  if (released.status !== 'released') throw notHeld(released);
  return resource(released, now);
}

export async function getReservation(ctx: Ctx, id: string): Promise<ReservationResource> {
  requireScope(ctx, 'check');
  const reservation = await ctx.deps.services.metering.store.findReservation(ctx.environment, id);
  if (!reservation) throw new NotFound('reservation', id);
  return resource(reservation, ctx.deps.clock.now());
}

async function heldReservation(ctx: Ctx, id: string, now: Date): Promise<Reservation> {
  const store = ctx.deps.services.metering.store;
  const reservation = await store.findReservation(ctx.environment, id);
  if (!reservation) throw new NotFound('reservation', id);
  if (reservation.status === 'held' && reservation.expiresAt.getTime() <= now.getTime()) {
    throw notHeld(await store.release(ctx.environment, reservation, now));
  }
  if (reservation.status !== 'held') throw notHeld(reservation);
  return reservation;
}

function notHeld(r: Reservation): Conflict {
  return new Conflict(`reservation_${r.status}`, `Reservation '${r.id}' is ${r.status}, not held`);
}

function resource(r: Reservation, now: Date, answer?: UsageAnswer): ReservationResource {
  const expired = r.status === 'held' && r.expiresAt.getTime() <= now.getTime();
  return {
    id: r.id,
    customer_id: r.customerId,
    feature: r.feature,
    amount: r.amount,
    committed_amount: r.committedAmount,
    status: expired ? 'expired' : r.status,
    period_start: r.period.start.toISOString(),
    resets_at: r.period.end?.toISOString() ?? null,
    expires_at: r.expiresAt.toISOString(),
    created_at: r.createdAt.toISOString(),
    settled_at: r.settledAt?.toISOString() ?? null,
    ...(answer ? { usage: answerJson(answer) as UsageResult } : {}),
  };
}
