import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { type AppEnv, ctxOf, errorResponses, jsonContent, ListQuery, security } from '../../platform/http.ts';
import { getStripeEvent, listStripeEvents, replayStripeEvent } from './events.ts';
import { receiveStripeWebhook } from './intake.ts';

const tags = ['Stripe'];
const STATUSES = ['received', 'processing', 'applied', 'ignored', 'failed'] as const;

const StripeEventSchema = z
  .object({
    id: z.string().openapi({ example: 'evt_1QabcXYZ' }),
    type: z.string().openapi({ example: 'customer.subscription.updated' }),
    api_version: z.string().nullable(),
    created: z.number().int().openapi({ description: 'Stripe’s `created`, seconds since the epoch' }),
    livemode: z.boolean(),
    object_type: z.string().nullable().openapi({ example: 'subscription' }),
    object_id: z.string().nullable().openapi({ example: 'sub_1QabcXYZ' }),
    status: z.enum(STATUSES).openapi({
      description:
        '`received`: waiting (first attempt or a retry); `processing`: being applied; `applied`/`ignored`: done; `failed`: attempts used up or a permanent error, replayable',
    }),
    attempts: z.number().int(),
    last_error: z.string().nullable(),
    detail: z.string().nullable().openapi({ description: 'What processing said (why an event was ignored)' }),
    received_at: z.string(),
    next_attempt_at: z.string().nullable().openapi({ description: 'When a waiting event is tried next' }),
    processed_at: z.string().nullable(),
  })
  .openapi('StripeEvent');

const StripeEventWithPayload = StripeEventSchema.extend({
  payload: z.record(z.string(), z.unknown()).openapi({ description: 'The event as Stripe sent it' }),
}).openapi('StripeEventWithPayload');

const EnvironmentParam = z.object({
  environment: z.string().min(1).max(64).openapi({ example: 'test', description: '`test` or `live`' }),
});
const IdParam = z.object({ id: z.string().min(1).max(255).openapi({ example: 'evt_1QabcXYZ' }) });

const problem = { 'application/problem+json': { schema: z.object({ code: z.string() }).loose() } };

export function registerStripeEventRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/webhooks/stripe/{environment}',
      tags,
      summary: 'Receive a Stripe webhook (the Stripe signature is the credential, no API key)',
      description:
        'The raw body is verified against the `Stripe-Signature` header with the environment’s webhook signing secret (tolerance 300 s), stored once by the event id and processed in the background. A duplicate answers 200 and does nothing more.',
      request: {
        params: EnvironmentParam,
        headers: z.object({
          'stripe-signature': z
            .string()
            .max(4096)
            .optional()
            .openapi({ description: 'Stripe’s signature header: `t=<seconds>,v1=<hex>`' }),
        }),
      },
      responses: {
        200: jsonContent(
          z
            .object({ received: z.literal(true), id: z.string(), type: z.string(), duplicate: z.boolean() })
            .openapi('StripeWebhookReceipt'),
          'Stored (or already stored): Stripe need not send it again',
        ),
        400: {
          description:
            'Bad, missing or stale signature, no webhook secret set, a body that is not a Stripe event, or an event of the other mode; nothing is stored',
          content: problem,
        },
        404: { description: 'No such environment', content: problem },
        413: { description: 'Body larger than 1 MiB', content: problem },
      },
    }),
    async (c) => {
      const { environment } = c.req.valid('param');
      const raw = new Uint8Array(await c.req.arrayBuffer());
      const receipt = await receiveStripeWebhook(
        c.get('deps'),
        environment,
        raw,
        c.req.header('stripe-signature'),
      );
      return c.json({ received: true as const, ...receipt }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/stripe/events',
      tags,
      security,
      summary: 'List stored Stripe events, newest first (`status=failed`: the dead letters)',
      request: {
        query: ListQuery.extend({
          status: z.enum(STATUSES).optional(),
          type: z.string().max(255).optional().openapi({ example: 'invoice.payment_failed' }),
        }),
      },
      responses: {
        200: jsonContent(
          z.object({ data: z.array(StripeEventSchema), next_cursor: z.string().nullable() }),
          'A page of events',
        ),
        ...errorResponses(),
      },
    }),
    async (c) => c.json(await listStripeEvents(ctxOf(c), c.req.valid('query')), 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/stripe/events/{id}',
      tags,
      security,
      summary: 'One stored Stripe event, with its payload',
      request: { params: IdParam },
      responses: { 200: jsonContent(StripeEventWithPayload, 'The event'), ...errorResponses(404) },
    }),
    async (c) => c.json(await getStripeEvent(ctxOf(c), c.req.valid('param').id), 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/stripe/events/{id}/replay',
      tags,
      security,
      summary: 'Process a failed or ignored Stripe event again',
      description:
        'The event waits to be processed again with a fresh set of attempts; audited as `stripe.event_replayed`. 409 when it is being processed, still waiting, or applied.',
      request: { params: IdParam },
      responses: {
        202: jsonContent(StripeEventSchema, 'Waiting to be processed'),
        ...errorResponses(404, 409),
      },
    }),
    async (c) => c.json(await replayStripeEvent(ctxOf(c), c.req.valid('param').id), 202),
  );
}
