import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { NotFound, ValidationFailed } from '../../platform/errors.ts';
import { type AppEnv, ctxOf, errorResponses, jsonBody, jsonContent, security } from '../../platform/http.ts';
import { enforceInputRule } from '../../platform/input-rules.ts';
import { CheckBody, CheckResultSchema, EntitlementsResultSchema } from './schema.ts';
import { checkEntitlement, listEntitlements } from './service.ts';

const tags = ['Decisions'];

const check = createRoute({
  method: 'post',
  path: '/v1/check',
  tags,
  security,
  summary: 'May this customer use this feature (this much, in this context) now?',
  description: 'Never answers 404: an unknown customer or feature is `allowed: false` with the reason.',
  request: jsonBody(CheckBody),
  responses: { 200: jsonContent(CheckResultSchema, 'The decision'), ...errorResponses() },
});

const entitlements = createRoute({
  method: 'get',
  path: '/v1/customers/{customer_id}/entitlements',
  tags,
  security,
  summary: 'Everything a customer is entitled to now, and why',
  request: {
    params: z.object({ customer_id: z.string().min(1).max(255) }),
    query: z.object({
      context: z.string().max(4096).optional().openapi({
        description: 'JSON object of context facts for conditions, e.g. {"device_compliant":true}',
      }),
    }),
  },
  responses: {
    200: jsonContent(EntitlementsResultSchema, 'The customer’s entitlements'),
    ...errorResponses(404),
  },
});

export function registerEntitlementRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(check, async (c) => c.json(await checkEntitlement(ctxOf(c), c.req.valid('json')), 200));
  app.openapi(entitlements, async (c) => {
    const { customer_id } = c.req.valid('param');
    const context = parseContext(c.req.valid('query').context);
    const result = await listEntitlements(ctxOf(c), customer_id, context);
    if (!result) throw new NotFound('customer', customer_id);
    return c.json(result, 200);
  });
}

function parseContext(raw: string | undefined): Record<string, string | number | boolean> {
  if (raw === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ValidationFailed([{ path: 'query.context', message: 'must be a JSON object' }]);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ValidationFailed([{ path: 'query.context', message: 'must be a JSON object' }]);
  }
  enforceInputRule(parsed, 'query.context');
  for (const [k, v] of Object.entries(parsed)) {
    if (!['string', 'number', 'boolean'].includes(typeof v)) {
      throw new ValidationFailed([
        { path: `query.context.${k}`, message: 'must be a string, number or boolean' },
      ]);
    }
  }
  return parsed as Record<string, string | number | boolean>;
}
