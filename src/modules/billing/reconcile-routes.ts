import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { type AppEnv, ctxOf, errorResponses, jsonContent, ListQuery, security } from '../../platform/http.ts';
import { getReconciliation, listReconciliations, runReconciliation } from './reconcile.ts';

const tags = ['Stripe'];

const DriftItemSchema = z
  .object({
    stripe_subscription_id: z.string().nullable().openapi({ example: 'sub_1QabcXYZ' }),
    customer_id: z.string().nullable(),
    tessera_subscription_id: z.string().nullable(),
    field: z.string().openapi({
      description:
        '`status`, `plan`, `quantity`, `cancel_at_period_end`, `current_period_end`, `subscription` (created), `price` (unmapped) or `stripe_customer_id`',
      example: 'status',
    }),
    tessera: z.unknown().openapi({ description: 'Tessera’s value before', example: 'active' }),
    stripe: z.unknown().openapi({ description: 'Stripe’s value', example: 'canceled' }),
    action: z.enum(['repaired', 'would_repair', 'reported']),
  })
  .openapi('StripeDriftItem');

const ReconciliationSchema = z
  .object({
    id: z.string().openapi({ example: 'rec_01JH3Q8Z5V0000000000000000' }),
    status: z.enum(['running', 'succeeded', 'failed']),
    dry_run: z.boolean(),
    started_at: z.string(),
    finished_at: z.string().nullable(),
    error: z.string().nullable(),
    report: z.object({
      items: z.array(DriftItemSchema),
      counts: z.object({
        stripe_subscriptions: z.number().int(),
        stripe_customers: z.number().int(),
        repaired: z.number().int(),
        would_repair: z.number().int(),
        reported: z.number().int(),
      }),
    }),
  })
  .openapi('StripeReconciliation');

const RunBody = z.strictObject({
  dry_run: z.boolean().optional().openapi({ description: 'Report what differs; change nothing' }),
});

export function registerReconciliationRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/stripe/reconciliations',
      tags,
      security,
      summary: 'Compare Stripe’s customers and subscriptions with Tessera’s now, repair drift, and report it',
      description:
        'Runs to completion and answers the drift report. A Stripe failure ends the run `failed` (listed, with what it had found) and answers 502 `stripe_error`; no secret key answers 422 `stripe_not_configured`.',
      request: {
        body: { content: { 'application/json': { schema: RunBody } }, required: false },
      },
      responses: {
        201: jsonContent(ReconciliationSchema, 'The finished run and its drift report'),
        ...errorResponses(422, 502),
      },
    }),
    async (c) => c.json(await runReconciliation(ctxOf(c), c.req.valid('json') ?? {}), 201),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/stripe/reconciliations',
      tags,
      security,
      summary: 'Reconciliation runs, newest first',
      request: { query: ListQuery },
      responses: {
        200: jsonContent(
          z.object({ data: z.array(ReconciliationSchema), next_cursor: z.string().nullable() }),
          'A page of runs',
        ),
        ...errorResponses(),
      },
    }),
    async (c) => c.json(await listReconciliations(ctxOf(c), c.req.valid('query')), 200),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/stripe/reconciliations/{id}',
      tags,
      security,
      summary: 'One reconciliation run and its drift report',
      request: { params: z.object({ id: z.string().min(1).max(255) }) },
      responses: { 200: jsonContent(ReconciliationSchema, 'The run'), ...errorResponses(404) },
    }),
    async (c) => c.json(await getReconciliation(ctxOf(c), c.req.valid('param').id), 200),
  );
}
