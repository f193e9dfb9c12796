import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import {
  type AppEnv,
  ctxOf,
  errorResponses,
  jsonBody,
  jsonContent,
  ListQuery,
  security,
} from '../../platform/http.ts';
import {
  CreateFeatureBody,
  FeatureListQuery,
  FeatureSchema,
  KeyParam,
  list,
  UpdateFeatureBody,
} from './schema.ts';
import { archiveFeature, createFeature, getFeature, listFeatures, updateFeature } from './service.ts';

const tags = ['Catalog'];

const create = createRoute({
  method: 'post',
  path: '/v1/features',
  tags,
  security,
  summary: 'Create a feature',
  request: jsonBody(CreateFeatureBody),
  responses: {
    201: jsonContent(FeatureSchema, 'The feature'),
    ...errorResponses(409),
  },
});

const listRoute = createRoute({
  method: 'get',
  path: '/v1/features',
  tags,
  security,
  summary: 'List features by key',
  request: { query: ListQuery.extend(FeatureListQuery.shape) },
  responses: { 200: jsonContent(list(FeatureSchema), 'A page of features'), ...errorResponses() },
});

const get = createRoute({
  method: 'get',
  path: '/v1/features/{key}',
  tags,
  security,
  summary: 'Get a feature',
  request: { params: KeyParam },
  responses: { 200: jsonContent(FeatureSchema, 'The feature'), ...errorResponses(404) },
});

const update = createRoute({
  method: 'patch',
  path: '/v1/features/{key}',
  tags,
  security,
  summary: 'Change a feature’s name, description or unit (its type is immutable)',
  request: { params: KeyParam, ...jsonBody(UpdateFeatureBody) },
  responses: { 200: jsonContent(FeatureSchema, 'The feature'), ...errorResponses(404) },
});

const archive = createRoute({
  method: 'post',
  path: '/v1/features/{key}/archive',
  tags,
  security,
  summary: 'Archive a feature: plans keep it, new plan versions cannot name it (idempotent)',
  request: { params: KeyParam },
  responses: { 200: jsonContent(FeatureSchema, 'The archived feature'), ...errorResponses(404) },
});

export function registerFeatureRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(create, async (c) => c.json(await createFeature(ctxOf(c), c.req.valid('json')), 201));
  app.openapi(listRoute, async (c) => c.json(await listFeatures(ctxOf(c), c.req.valid('query')), 200));
  app.openapi(get, async (c) => c.json(await getFeature(ctxOf(c), c.req.valid('param').key), 200));
  app.openapi(update, async (c) =>
    c.json(await updateFeature(ctxOf(c), c.req.valid('param').key, c.req.valid('json')), 200),
  );
  app.openapi(archive, async (c) => c.json(await archiveFeature(ctxOf(c), c.req.valid('param').key), 200));
}
