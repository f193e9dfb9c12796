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
import {
  CreatePlanBody,
  CreatePlanVersionBody,
  PlanListQuery,
  PlanSchema,
  PlanWithVersionsSchema,
  UpdatePlanBody,
} from './plan-schema.ts';
import { KeyParam, list } from './schema.ts';
import {
  archivePlan,
  createPlan,
  createPlanVersion,
  getPlan,
  getPlanVersion,
  listPlans,
  updatePlan,
} from './service.ts';

const tags = ['Catalog'];

const create = createRoute({
  method: 'post',
  path: '/v1/plans',
  tags,
  security,
  summary: 'Create a plan at version 1',
  request: jsonBody(CreatePlanBody),
  responses: {
    201: jsonContent(PlanSchema, 'The plan at version 1'),
    ...errorResponses(409, 422),
  },
});

const createVersion = createRoute({
  method: 'post',
  path: '/v1/plans/{key}/versions',
  tags,
  security,
  summary: 'Publish the next version of a plan (versions are immutable)',
  request: { params: KeyParam, ...jsonBody(CreatePlanVersionBody) },
  responses: {
    201: jsonContent(PlanSchema, 'The plan at its new version'),
    ...errorResponses(404, 422),
  },
});

const listRoute = createRoute({
  method: 'get',
  path: '/v1/plans',
  tags,
  security,
  summary: 'List plans at their latest versions, by key',
  request: { query: ListQuery.extend(PlanListQuery.shape) },
  responses: { 200: jsonContent(list(PlanSchema), 'A page of plans'), ...errorResponses() },
});

const get = createRoute({
  method: 'get',
  path: '/v1/plans/{key}',
  tags,
  security,
  summary: 'Get a plan at its latest version, with the list of its versions',
  request: { params: KeyParam },
  responses: { 200: jsonContent(PlanWithVersionsSchema, 'The plan'), ...errorResponses(404) },
});

const getVersion = createRoute({
  method: 'get',
  path: '/v1/plans/{key}/versions/{version}',
  tags,
  security,
  summary: 'Get one version of a plan',
  request: {
    params: KeyParam.extend({ version: z.coerce.number().int().min(1).max(2_147_483_647) }),
  },
  responses: { 200: jsonContent(PlanSchema, 'The plan at that version'), ...errorResponses(404) },
});

const update = createRoute({
  method: 'patch',
  path: '/v1/plans/{key}',
  tags,
  security,
  summary: 'Change a plan’s name or description (entitlements change through new versions)',
  request: { params: KeyParam, ...jsonBody(UpdatePlanBody) },
  responses: { 200: jsonContent(PlanSchema, 'The plan at its latest version'), ...errorResponses(404) },
});

const archive = createRoute({
  method: 'post',
  path: '/v1/plans/{key}/archive',
  tags,
  security,
  summary: 'Archive a plan: subscribers keep it, new subscriptions cannot start on it (idempotent)',
  request: { params: KeyParam },
  responses: { 200: jsonContent(PlanSchema, 'The archived plan'), ...errorResponses(404) },
});

export function registerPlanRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(create, async (c) => c.json(await createPlan(ctxOf(c), c.req.valid('json')), 201));
  app.openapi(createVersion, async (c) =>
    c.json(await createPlanVersion(ctxOf(c), c.req.valid('param').key, c.req.valid('json')), 201),
  );
  app.openapi(listRoute, async (c) => c.json(await listPlans(ctxOf(c), c.req.valid('query')), 200));
  app.openapi(get, async (c) => c.json(await getPlan(ctxOf(c), c.req.valid('param').key), 200));
  app.openapi(getVersion, async (c) => {
    const { key, version } = c.req.valid('param');
    return c.json(await getPlanVersion(ctxOf(c), key, version), 200);
  });
  app.openapi(update, async (c) =>
    c.json(await updatePlan(ctxOf(c), c.req.valid('param').key, c.req.valid('json')), 200),
  );
  app.openapi(archive, async (c) => c.json(await archivePlan(ctxOf(c), c.req.valid('param').key), 200));
}
