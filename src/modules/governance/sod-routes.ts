import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { type AppEnv, ctxOf, errorResponses, jsonBody, jsonContent, security } from '../../platform/http.ts';
import { createSodRule, deleteSodRule, getSodRule, listSodRuleResources } from './sod-rules.ts';
import { CreateSodRuleBody, SodRuleSchema } from './sod-schema.ts';

const IdParam = z.object({ id: z.string().min(1).max(100) });

export function registerSodRuleRoutes(app: OpenAPIHono<AppEnv>): void {
  const tags = ['Governance'];
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/sod-rules',
      tags,
      security,
      summary: 'Add a separation-of-duties rule (features held together, or an incompatible duty)',
      request: jsonBody(CreateSodRuleBody),
      responses: { 201: jsonContent(SodRuleSchema, 'The rule'), ...errorResponses(422) },
    }),
    async (c) => c.json(await createSodRule(ctxOf(c), c.req.valid('json')), 201),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/sod-rules',
      tags,
      security,
      summary: 'Separation-of-duties rules in force, oldest first',
      responses: {
        200: jsonContent(z.object({ data: z.array(SodRuleSchema) }), 'The rules'),
        ...errorResponses(),
      },
    }),
    async (c) => c.json({ data: await listSodRuleResources(ctxOf(c)) }, 200),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/sod-rules/{id}',
      tags,
      security,
      summary: 'One separation-of-duties rule (a deleted one shows `deleted_at`)',
      request: { params: IdParam },
      responses: { 200: jsonContent(SodRuleSchema, 'The rule'), ...errorResponses(404) },
    }),
    async (c) => c.json(await getSodRule(ctxOf(c), c.req.valid('param').id), 200),
  );
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/sod-rules/{id}',
      tags,
      security,
      summary: 'Stop enforcing a rule (it stays readable with `deleted_at`)',
      request: { params: IdParam },
      responses: { 200: jsonContent(SodRuleSchema, 'The deleted rule'), ...errorResponses(404) },
    }),
    async (c) => c.json(await deleteSodRule(ctxOf(c), c.req.valid('param').id), 200),
  );
}
