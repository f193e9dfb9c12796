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
import { createGrantDirect, createOverrideDirect, requestLocation } from '../governance/direct-changes.ts';
import { AccessRequestSchema } from '../governance/request-schema.ts';
import { listGrants, voidGrant } from './grant-service.ts';
import { endOverride, listOverrides } from './override-service.ts';
import { CreateGrantBody, CreateOverrideBody, GrantSchema, OverrideSchema } from './schema.ts';

const CustomerParam = z.object({ customer_id: z.string().min(1).max(255) });
const IdParam = z.object({ id: z.string().min(1).max(100) });
const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ data: z.array(item), next_cursor: z.string().nullable() });

/** A change held back by a `require_approval` SoD rule. */
const HELD = jsonContent(
  AccessRequestSchema,
  'A separation-of-duties rule needs this change approved: the access request filed instead (`Location` names it)',
);

export function registerOverrideRoutes(app: OpenAPIHono<AppEnv>): void {
  const tags = ['Overrides and credits'];
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/customers/{customer_id}/overrides',
      tags,
      security,
      summary: 'Grant a per-customer exception, optionally time-boxed',
      request: { params: CustomerParam, ...jsonBody(CreateOverrideBody) },
      responses: {
        201: jsonContent(OverrideSchema, 'The override'),
        202: HELD,
        ...errorResponses(404, 409, 422),
      },
    }),
    async (c) => {
      const outcome = await createOverrideDirect(
        ctxOf(c),
        c.req.valid('param').customer_id,
        c.req.valid('json'),
      );
      if ('request' in outcome) return c.json(outcome.request, 202, requestLocation(outcome.request));
      return c.json(outcome.made, 201);
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/customers/{customer_id}/overrides',
      tags,
      security,
      summary: 'A customer’s overrides, past and present',
      request: { params: CustomerParam, query: ListQuery },
      responses: { 200: jsonContent(pageOf(OverrideSchema), 'A page of overrides'), ...errorResponses(404) },
    }),
    async (c) =>
      c.json(await listOverrides(ctxOf(c), c.req.valid('param').customer_id, c.req.valid('query')), 200),
  );
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/overrides/{id}',
      tags,
      security,
      summary: 'End an override now (it stays in the history)',
      request: { params: IdParam },
      responses: { 200: jsonContent(OverrideSchema, 'The ended override'), ...errorResponses(404) },
    }),
    async (c) => c.json(await endOverride(ctxOf(c), c.req.valid('param').id), 200),
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/customers/{customer_id}/grants',
      tags,
      security,
      summary: 'Grant credits for a metered feature (used before overage)',
      request: { params: CustomerParam, ...jsonBody(CreateGrantBody) },
      responses: {
        201: jsonContent(GrantSchema, 'The grant'),
        202: HELD,
        ...errorResponses(404, 409, 422),
      },
    }),
    async (c) => {
      const outcome = await createGrantDirect(
        ctxOf(c),
        c.req.valid('param').customer_id,
        c.req.valid('json'),
      );
      if ('request' in outcome) return c.json(outcome.request, 202, requestLocation(outcome.request));
      return c.json(outcome.made, 201);
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/customers/{customer_id}/grants',
      tags,
      security,
      summary: 'A customer’s credit grants',
      request: { params: CustomerParam, query: ListQuery },
      responses: { 200: jsonContent(pageOf(GrantSchema), 'A page of grants'), ...errorResponses(404) },
    }),
    async (c) =>
      c.json(await listGrants(ctxOf(c), c.req.valid('param').customer_id, c.req.valid('query')), 200),
  );
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/grants/{id}',
      tags,
      security,
      summary: 'Void a grant now (credit it already paid for stays paid)',
      request: { params: IdParam },
      responses: { 200: jsonContent(GrantSchema, 'The voided grant'), ...errorResponses(404) },
    }),
    async (c) => c.json(await voidGrant(ctxOf(c), c.req.valid('param').id), 200),
  );
}
