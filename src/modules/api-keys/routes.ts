import type { OpenAPIHono } from '@hono/zod-openapi';
import { createRoute, z } from '@hono/zod-openapi';
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
import { ApiKeySchema, CreateApiKeyBody, CreatedApiKeySchema, UpdateApiKeyBody } from './schema.ts';
import { createApiKey, listApiKeys, revokeApiKey, updateApiKey } from './service.ts';

const tags = ['API keys'];

const createKey = createRoute({
  method: 'post',
  path: '/v1/api-keys',
  tags,
  security,
  summary: 'Create an API key in the caller’s environment',
  description:
    'The answer carries the new key’s `secret` this once (sent with `Cache-Control: no-store`). ' +
    'A repeat with the same `Idempotency-Key` and body answers the same 201 with header ' +
    '`idempotent-replayed: true`, but with `secret: null` and `secret_redacted: true`: secrets are ' +
    'never stored for replay. A client that lost the secret revokes the key and creates another.',
  request: jsonBody(CreateApiKeyBody),
  responses: {
    201: jsonContent(CreatedApiKeySchema, 'The key, with its secret shown this once'),
    ...errorResponses(),
  },
});

const listKeys = createRoute({
  method: 'get',
  path: '/v1/api-keys',
  tags,
  security,
  summary: 'List API keys',
  request: { query: ListQuery },
  responses: {
    200: jsonContent(
      z.object({ data: z.array(ApiKeySchema), next_cursor: z.string().nullable() }),
      'A page of keys',
    ),
    ...errorResponses(),
  },
});

const revokeKey = createRoute({
  method: 'delete',
  path: '/v1/api-keys/{id}',
  tags,
  security,
  summary: 'Revoke an API key (it stops working within 5 seconds)',
  request: { params: z.object({ id: z.string().max(100) }) },
  responses: { 200: jsonContent(ApiKeySchema, 'The revoked key'), ...errorResponses(404) },
});

const updateKey = createRoute({
  method: 'patch',
  path: '/v1/api-keys/{id}',
  tags,
  security,
  summary: 'Rename an API key or change its rate limit',
  description:
    'The change reaches this node at once and the others within the key cache time (at most 5 seconds).',
  request: { params: z.object({ id: z.string().max(100) }), ...jsonBody(UpdateApiKeyBody) },
  responses: { 200: jsonContent(ApiKeySchema, 'The key'), ...errorResponses(404) },
});

export function registerApiKeyRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(createKey, async (c) => {
    const created = await createApiKey(ctxOf(c), c.req.valid('json'));
    carriesSecret(c, ['secret']);
    return c.json(created, 201);
  });
  app.openapi(listKeys, async (c) => c.json(await listApiKeys(ctxOf(c), c.req.valid('query')), 200));
  app.openapi(updateKey, async (c) =>
    c.json(await updateApiKey(ctxOf(c), c.req.valid('param').id, c.req.valid('json')), 200),
  );
  app.openapi(revokeKey, async (c) => c.json(await revokeApiKey(ctxOf(c), c.req.valid('param').id), 200));
}
