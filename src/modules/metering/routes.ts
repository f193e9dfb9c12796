import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { type AppEnv, ctxOf, errorResponses, jsonBody, jsonContent, security } from '../../platform/http.ts';
import { registerReservationRoutes } from './reservation-routes.ts';
import { UsageBatchBody, UsageBatchResultSchema, UsageEventBody, UsageResultSchema } from './schema.ts';
import { recordUsage, recordUsageBatch } from './service.ts';

const tags = ['Usage'];

const usage = createRoute({
  method: 'post',
  path: '/v1/usage',
  tags,
  security,
  summary: 'Record usage of a metered feature (check-and-consume)',
  description:
    'Under a `deny` limit an event that does not fit (limit plus credit) is refused whole and nothing is counted. The same `idempotency_key` again returns the first answer and counts nothing.',
  request: jsonBody(UsageEventBody),
  responses: { 200: jsonContent(UsageResultSchema, 'The answer'), ...errorResponses(422) },
});

const batch = createRoute({
  method: 'post',
  path: '/v1/usage/batch',
  tags,
  security,
  summary: 'Record up to 1,000 usage events',
  description:
    'Results come in the order of the events. An event that is not valid gets `{error: {code, message, path}}` in its place; the others are recorded.',
  request: jsonBody(UsageBatchBody),
  responses: { 200: jsonContent(UsageBatchResultSchema, 'One result per event'), ...errorResponses() },
});

export function registerMeteringRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(usage, async (c) => c.json(await recordUsage(ctxOf(c), c.req.valid('json')), 200));
  app.openapi(batch, async (c) =>
    c.json({ results: await recordUsageBatch(ctxOf(c), c.req.valid('json').events) }, 200),
  );
  registerReservationRoutes(app);
}
