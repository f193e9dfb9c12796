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
  createAccessRequest,
  decideAccessRequest,
  getAccessRequest,
  listAccessRequests,
} from './access-requests.ts';
import { deleteActorGroup, getActorGroup, listActorGroups, putActorGroup } from './actor-groups.ts';
import { createApprovalPolicy, listApprovalPolicies } from './policies.ts';
import { AccessRequestSchema, CreateAccessRequestBody, DecideBody } from './request-schema.ts';
import {
  ActorGroupSchema,
  CreatePolicyBody,
  GroupKeyParam,
  PolicySchema,
  PutActorGroupBody,
} from './schema.ts';
import { registerSodRuleRoutes } from './sod-routes.ts';

const IdParam = z.object({ id: z.string().min(1).max(100) });
const RequestQuery = ListQuery.extend({
  status: z.enum(['pending', 'applied', 'denied', 'expired']).optional(),
  customer_id: z.string().min(1).max(255).optional(),
});
const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ data: z.array(item), next_cursor: z.string().nullable() });

export function registerGovernanceRoutes(app: OpenAPIHono<AppEnv>): void {
  const tags = ['Governance'];
  registerSodRuleRoutes(app);
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
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/actor-groups',
      tags,
      security,
      summary: 'Groups of actors, by key, a page at a time',
      request: { query: ListQuery },
      responses: { 200: jsonContent(pageOf(ActorGroupSchema), 'A page of groups'), ...errorResponses() },
    }),
    async (c) => c.json(await listActorGroups(ctxOf(c), c.req.valid('query')), 200),
  );
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/actor-groups/{key}',
      tags,
      security,
      summary: 'Delete a group (approvers naming it then match no one)',
      request: { params: GroupKeyParam },
      responses: { 200: jsonContent(ActorGroupSchema, 'The deleted group'), ...errorResponses(404) },
    }),
    async (c) => c.json(await deleteActorGroup(ctxOf(c), c.req.valid('param').key), 200),
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/approval-policies',
      tags,
      security,
      summary: 'Add an approval policy (the oldest matching policy governs a request)',
      request: jsonBody(CreatePolicyBody),
      responses: { 201: jsonContent(PolicySchema, 'The policy'), ...errorResponses() },
    }),
    async (c) => c.json(await createApprovalPolicy(ctxOf(c), c.req.valid('json')), 201),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/approval-policies',
      tags,
      security,
      summary: 'Approval policies, oldest (first to match) first',
      responses: {
        200: jsonContent(z.object({ data: z.array(PolicySchema) }), 'The policies'),
        ...errorResponses(),
      },
    }),
    async (c) => c.json({ data: await listApprovalPolicies(ctxOf(c)) }, 200),
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/access-requests',
      tags,
      security,
      summary: 'Ask for a change to what a customer holds (needs Tessera-Actor)',
      request: jsonBody(CreateAccessRequestBody),
      responses: { 201: jsonContent(AccessRequestSchema, 'The request'), ...errorResponses(404, 422) },
    }),
    async (c) => c.json(await createAccessRequest(ctxOf(c), c.req.valid('json')), 201),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/access-requests',
      tags,
      security,
      summary: 'Access requests, oldest first, a page at a time (filters: status, customer_id)',
      request: { query: RequestQuery },
      responses: {
        200: jsonContent(pageOf(AccessRequestSchema), 'A page of requests'),
        ...errorResponses(),
      },
    }),
    async (c) => c.json(await listAccessRequests(ctxOf(c), c.req.valid('query')), 200),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/access-requests/{id}',
      tags,
      security,
      summary: 'One access request with its decisions',
      request: { params: IdParam },
      responses: { 200: jsonContent(AccessRequestSchema, 'The request'), ...errorResponses(404) },
    }),
    async (c) => c.json(await getAccessRequest(ctxOf(c), c.req.valid('param').id), 200),
  );
  for (const decision of ['approve', 'deny'] as const) {
    app.openapi(
      createRoute({
        method: 'post',
        path: `/v1/access-requests/{id}/${decision}`,
        tags,
        security,
        summary: `${decision === 'approve' ? 'Approve' : 'Deny'} the current stage (needs Tessera-Actor)`,
        request: { params: IdParam, ...jsonBody(DecideBody) },
        responses: { 200: jsonContent(AccessRequestSchema, 'The request'), ...errorResponses(403, 404, 409) },
      }),
      async (c) =>
        c.json(
          await decideAccessRequest(ctxOf(c), c.req.valid('param').id, decision, c.req.valid('json').comment),
          200,
        ),
    );
  }
}
