import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import { type AppEnv, ctxOf, errorResponses, jsonBody, jsonContent, security } from '../../platform/http.ts';
import { getActorGroup, putActorGroup } from './actor-groups.ts';
import { ActorGroupSchema, GroupKeyParam, PutActorGroupBody } from './schema.ts';

export function registerGovernanceRoutes(app: OpenAPIHono<AppEnv>): void {
  const tags = ['Governance'];
  app.openapi(
    createRoute({
      method: 'put',
      path: '/v1/actor-groups/{key}',
      tags,
      security,
      summary: 'Create or replace a group of actors (approvers refer to it as `group:<key>`)',
      request: { params: GroupKeyParam, ...jsonBody(PutActorGroupBody) },
      responses: {
        200: jsonContent(ActorGroupSchema, 'The group, replaced'),
        201: jsonContent(ActorGroupSchema, 'The group, created'),
        ...errorResponses(),
      },
    }),
    async (c) => {
      const { created, group } = await putActorGroup(ctxOf(c), c.req.valid('param').key, c.req.valid('json'));
      return created ? c.json(group, 201) : c.json(group, 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/actor-groups/{key}',
      tags,
      security,
      summary: 'One group of actors',
      request: { params: GroupKeyParam },
      responses: { 200: jsonContent(ActorGroupSchema, 'The group'), ...errorResponses(404) },
    }),
    async (c) => c.json(await getActorGroup(ctxOf(c), c.req.valid('param').key), 200),
  );
}
