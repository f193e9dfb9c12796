/**
 * Webhook intake: `POST /v1/webhooks/stripe/{environment}` verifies Stripe's signature over the raw
 * body with the real `stripe` package, stores the event once by its id, and hands it to the event
 * queue (src/modules/billing/events.ts processes it). The row is the durable record: the queue is
 * only told to look, and a lost message is found again by the worker's sweep.
 */
import { z } from '@hono/zod-openapi';
import Stripe from 'stripe';
import type { AppDeps } from '../../platform/context.ts';
import { AppError, BadRequest, ValidationFailed } from '../../platform/errors.ts';
import { fieldErrors } from '../../platform/http.ts';
import { enforceInputRule } from '../../platform/input-rules.ts';
import { stripeConnection } from './settings.ts';

/** How old a signature may be (Stripe's own default): an older one is a replay. */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

/** What the intake needs of the event queue (src/workers/stripe-events.ts provides it). */
export interface StripeEventQueue {
  /** Tells the workers an event is waiting; the stored row is what counts, so a lost call is recovered. */
  enqueue(environment: string, id: string): Promise<void>;
}

export class EnvironmentNotFound extends AppError {
  readonly status = 404;
  readonly code = 'environment_not_found';
}

/** The part of a Stripe event the intake relies on; the rest is stored as sent. */
const EventShape = z.looseObject({
  id: z
    .string()
    .max(255)
    .regex(/^evt_[A-Za-z0-9_]+$/, 'must be a Stripe event id (evt_…)'),
  object: z.literal('event'),
  type: z.string().min(1).max(255),
  api_version: z.string().max(64).nullable().optional(),
  created: z.number().int().nonnegative(),
  livemode: z.boolean(),
  data: z.looseObject({
    object: z.looseObject({
      object: z.string().max(255).optional(),
      id: z.string().max(255).optional(),
    }),
  }),
});

export interface ReceivedStripeEvent {
  id: string;
  type: string;
  /** True when this event id was already stored: nothing more was done. */
  duplicate: boolean;
}

const signatureError = (code: string, message: string) =>
  new BadRequest(code, message, [{ path: 'header.stripe-signature', message }]);

/**
 * Verifies, checks and stores one webhook. Throws a 4xx (nothing stored) for an unknown
 * environment, a missing or wrong secret, a bad or stale signature, a body that is not a Stripe
 * event, or an event of the other mode than the environment's.
 */
export async function receiveStripeWebhook(
  deps: AppDeps,
  environment: string,
  raw: Uint8Array,
  signature: string | undefined,
): Promise<ReceivedStripeEvent> {
  const known = await deps.db
    .selectFrom('environments')
    .select('id')
    .where('id', '=', environment)
    .executeTakeFirst();
  if (!known) throw new EnvironmentNotFound(`No environment '${environment}'`);
  const connection = await stripeConnection(deps, deps.db, environment);
  if (!connection?.webhookSecret)
    throw new BadRequest(
      'stripe_webhook_not_configured',
      `No Stripe webhook signing secret is set for the '${environment}' environment (PUT /v1/stripe/settings)`,
    );
  if (!signature) throw signatureError('stripe_signature_missing', 'the Stripe-Signature header is required');

  let parsed: unknown;
  try {
    parsed = Stripe.webhooks.constructEvent(
      raw,
      signature,
      connection.webhookSecret,
      SIGNATURE_TOLERANCE_SECONDS,
      undefined,
      deps.clock.now().getTime(),
    );
  } catch (err) {
    if (err instanceof Stripe.errors.StripeSignatureVerificationError) {
      if (/tolerance/i.test(err.message))
        throw signatureError(
          'stripe_signature_expired',
          `the signature is older than ${SIGNATURE_TOLERANCE_SECONDS} seconds`,
        );
      throw signatureError('stripe_signature_invalid', 'does not match the body and the signing secret');
    }
    // The signature matched, but the signed bytes are not JSON.
    throw new BadRequest('malformed_json', 'The body is not valid JSON', [
      { path: '(body)', message: 'not valid JSON' },
    ]);
  }
  enforceInputRule(parsed);
  const shape = EventShape.safeParse(parsed);
  if (!shape.success) throw new ValidationFailed(fieldErrors(shape.error.issues));
  const event = shape.data;
  if (event.livemode !== (environment === 'live'))
    throw new BadRequest(
      'stripe_livemode_mismatch',
      `A ${event.livemode ? 'live' : 'test'}-mode event cannot be sent to the '${environment}' environment`,
      [{ path: 'livemode', message: `must be ${environment === 'live'} in this environment` }],
    );

  const now = deps.clock.now();
  const inserted = await deps.db
    .insertInto('stripe_events')
    .values({
      environment,
      id: event.id,
      type: event.type,
      api_version: event.api_version ?? null,
      created: event.created,
      livemode: event.livemode,
      object_type: event.data.object.object ?? null,
      object_id: event.data.object.id ?? null,
      payload: JSON.stringify(parsed),
      status: 'received',
      received_at: now,
      next_attempt_at: now,
    })
    .onConflict((oc) => oc.columns(['environment', 'id']).doNothing())
    .returning('id')
    .executeTakeFirst();
  if (!inserted) {
    deps.logger.debug({ environment, stripeEvent: event.id }, 'duplicate Stripe event ignored');
    return { id: event.id, type: event.type, duplicate: true };
  }
  deps.logger.info({ environment, stripeEvent: event.id, type: event.type }, 'Stripe event received');
  try {
    await deps.services.stripeEvents.enqueue(environment, event.id);
  } catch (err) {
    // Stored: the worker's sweep finds it.
    deps.logger.warn({ err, environment, stripeEvent: event.id }, 'could not enqueue a Stripe event');
  }
  return { id: event.id, type: event.type, duplicate: false };
}
