import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import {
  type AppEnv,
  ctxOf,
  errorResponses,
  jsonBody,
  jsonContent,
  ListQuery,
  security,
} from '../../platform/http.ts';
import { carriesSecret } from '../../platform/secret-answer.ts';
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  getWebhookEndpoint,
  listWebhookDeliveries,
  listWebhookEndpoints,
  redeliverWebhook,
  WEBHOOK_EVENT_TYPES,
} from './service.ts';

const tags = ['Webhooks'];

const CreateEndpointBody = z
  .strictObject({
    url: z.string().min(1).max(2000).openapi({
      description: '`https`; plain `http` to loopback only with TESSERA_WEBHOOKS_ALLOW_LOOPBACK',
    }),
    event_types: z
      .array(z.enum(WEBHOOK_EVENT_TYPES))
      .max(WEBHOOK_EVENT_TYPES.length)
      .optional()
      .openapi({ description: 'Types to receive; omitted or empty: every type' }),
    description: z.string().max(500).optional(),
  })
  .openapi('CreateWebhookEndpoint');

const EndpointSchema = z
  .object({
    id: z.string(),
    url: z.string(),
    event_types: z.array(z.string()),
    description: z.string().nullable(),
    created_at: z.string(),
  })
  .openapi('WebhookEndpoint');

const CreatedEndpointSchema = EndpointSchema.extend({
  secret: z.string().openapi({ description: '`whsec_` + base64, shown this once' }),
}).openapi('CreatedWebhookEndpoint');

const DeliverySchema = z
  .object({
    id: z.string().openapi({ description: 'The `webhook-id` header' }),
    endpoint_id: z.string(),
    event_type: z.string(),
    customer_id: z.string().nullable(),
    payload: z.record(z.string(), z.unknown()),
    status: z.enum(['pending', 'delivered', 'failed']),
    attempts: z.number().int(),
    next_attempt_at: z.string().nullable(),
    last_status: z.number().int().nullable(),
    last_error: z.string().nullable(),
    created_at: z.string(),
    delivered_at: z.string().nullable(),
  })
  .openapi('WebhookDelivery');

const IdParam = z.object({ id: z.string().max(100) });

export function registerWebhookRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/webhook-endpoints',
      tags,
      security,
      summary: 'Register an endpoint for outbound webhooks (its signing secret is shown this once)',
      request: jsonBody(CreateEndpointBody),
      responses: { 201: jsonContent(CreatedEndpointSchema, 'The endpoint'), ...errorResponses() },
    }),
    async (c) => {
      const created = await createWebhookEndpoint(ctxOf(c), c.req.valid('json'));
      carriesSecret(c, ['secret']);
      return c.json(created, 201);
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/webhook-endpoints',
      tags,
      security,
      summary: 'List webhook endpoints',
      request: { query: ListQuery },
      responses: {
        200: jsonContent(
          z.object({ data: z.array(EndpointSchema), next_cursor: z.string().nullable() }),
          'A page of endpoints',
        ),
        ...errorResponses(),
      },
    }),
    async (c) => c.json(await listWebhookEndpoints(ctxOf(c), c.req.valid('query')), 200),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/webhook-endpoints/{id}',
      tags,
      security,
      summary: 'A webhook endpoint',
      request: { params: IdParam },
      responses: { 200: jsonContent(EndpointSchema, 'The endpoint'), ...errorResponses(404) },
    }),
    async (c) => c.json(await getWebhookEndpoint(ctxOf(c), c.req.valid('param').id), 200),
  );
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/webhook-endpoints/{id}',
      tags,
      security,
      summary: 'Delete a webhook endpoint (its pending deliveries are dropped)',
      request: { params: IdParam },
      responses: { 200: jsonContent(EndpointSchema, 'The deleted endpoint'), ...errorResponses(404) },
    }),
    async (c) => c.json(await deleteWebhookEndpoint(ctxOf(c), c.req.valid('param').id), 200),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/webhook-endpoints/{id}/deliveries',
      tags,
      security,
      summary: 'The delivery log of an endpoint, newest first',
      request: { params: IdParam, query: ListQuery },
      responses: {
        200: jsonContent(
          z.object({ data: z.array(DeliverySchema), next_cursor: z.string().nullable() }),
          'A page of deliveries',
        ),
        ...errorResponses(404),
      },
    }),
    async (c) =>
      c.json(await listWebhookDeliveries(ctxOf(c), c.req.valid('param').id, c.req.valid('query')), 200),
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/webhook-endpoints/{id}/deliveries/{delivery_id}/redeliver',
      tags,
      security,
      summary: 'Send a delivery again, with the same webhook-id',
      request: { params: z.object({ id: z.string().max(100), delivery_id: z.string().max(200) }) },
      responses: { 200: jsonContent(DeliverySchema, 'The delivery, pending again'), ...errorResponses(404) },
    }),
    async (c) => {
      const { id, delivery_id } = c.req.valid('param');
      return c.json(await redeliverWebhook(ctxOf(c), id, delivery_id), 200);
    },
  );
}
