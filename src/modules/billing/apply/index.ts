/**
 * Applies one verified Stripe event to customers and subscriptions. This is the entry point the
 * event worker calls (src/modules/billing/events.ts), inside the transaction that records the
 * event's outcome. Placeholder: no event type is handled yet, so every event is `ignored`.
 */
import type Stripe from 'stripe';
import type { Ctx } from '../../../platform/context.ts';
import type { StripeConnection } from '../settings.ts';

export type ApplyOutcome = { outcome: 'applied' | 'ignored'; detail?: string };

/**
 * Thrown by `applyStripeEvent` when trying again cannot help (the event contradicts what is
 * stored, say): the event is marked `failed` at once instead of being retried.
 */
export class PermanentStripeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PermanentStripeError';
  }
}

export async function applyStripeEvent(
  _ctx: Ctx,
  _event: Stripe.Event,
  _connection: StripeConnection,
): Promise<ApplyOutcome> {
  return { outcome: 'ignored', detail: 'not handled yet' };
}
