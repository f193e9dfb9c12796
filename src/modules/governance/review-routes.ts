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
  createAccessReview,
  decideReviewItem,
  getAccessReview,
  listAccessReviews,
} from './access-reviews.ts';
import { closeFlag, getFlag, listFlags } from './anomaly-flags.ts';
import { scanForAnomalies } from './anomaly-scan.ts';
import {
  CloseFlagBody,
  CreateReviewBody,
  DecideItemBody,
  FlagListQuery,
  FlagSchema,
  ReviewItemSchema,
  ReviewListQuery,
  ReviewSchema,
} from './review-schema.ts';

const IdParam = z.object({ id: z.string().min(1).max(100) });
const ItemParams = z.object({ id: z.string().min(1).max(100), item_id: z.string().min(1).max(100) });
const pageOf = <T extends z.ZodType>(item: T) =>
  z.object({ data: z.array(item), next_cursor: z.string().nullable() });

export function registerReviewRoutes(app: OpenAPIHono<AppEnv>): void {
  const tags = ['Governance'];
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/access-reviews',
      tags,
      security,
      summary: 'Open an access review of the live overrides and grants in scope',
      request: jsonBody(CreateReviewBody),
      responses: { 201: jsonContent(ReviewSchema, 'The campaign with its items'), ...errorResponses() },
    }),
    async (c) => c.json(await createAccessReview(ctxOf(c), c.req.valid('json')), 201),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/access-reviews',
      tags,
      security,
      summary: 'Access reviews, oldest first (without their items)',
      request: { query: ListQuery.extend(ReviewListQuery.shape) },
      responses: { 200: jsonContent(pageOf(ReviewSchema), 'A page of campaigns'), ...errorResponses() },
    }),
    async (c) => c.json(await listAccessReviews(ctxOf(c), c.req.valid('query')), 200),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/access-reviews/{id}',
      tags,
      security,
      summary: 'One access review with every item',
      request: { params: IdParam },
      responses: { 200: jsonContent(ReviewSchema, 'The campaign'), ...errorResponses(404) },
    }),
    async (c) => c.json(await getAccessReview(ctxOf(c), c.req.valid('param').id), 200),
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/access-reviews/{id}/items/{item_id}/decide',
      tags,
      security,
      summary: 'Keep or remove one reviewed exception (a reviewer, named by Tessera-Actor)',
      request: { params: ItemParams, ...jsonBody(DecideItemBody) },
      responses: { 200: jsonContent(ReviewItemSchema, 'The decided item'), ...errorResponses(404, 409) },
    }),
    async (c) => {
      const { id, item_id } = c.req.valid('param');
      return c.json(await decideReviewItem(ctxOf(c), id, item_id, c.req.valid('json')), 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/flags',
      tags,
      security,
      summary: 'Anomaly flags, oldest first',
      request: { query: ListQuery.extend(FlagListQuery.shape) },
      responses: { 200: jsonContent(pageOf(FlagSchema), 'A page of flags'), ...errorResponses() },
    }),
    async (c) => c.json(await listFlags(ctxOf(c), c.req.valid('query')), 200),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/flags/{id}',
      tags,
      security,
      summary: 'One anomaly flag',
      request: { params: IdParam },
      responses: { 200: jsonContent(FlagSchema, 'The flag'), ...errorResponses(404) },
    }),
    async (c) => c.json(await getFlag(ctxOf(c), c.req.valid('param').id), 200),
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/flags/scan',
      tags,
      security,
      summary: 'Scan this environment for anomalies now (the scheduler does so daily)',
      responses: {
        200: jsonContent(z.object({ raised: z.array(FlagSchema) }), 'The flags raised by this scan'),
        ...errorResponses(),
      },
    }),
    async (c) => c.json({ raised: await scanForAnomalies(ctxOf(c)) }, 200),
  );
  for (const [action, status] of [
    ['resolve', 'resolved'],
    ['dismiss', 'dismissed'],
  ] as const) {
    app.openapi(
      createRoute({
        method: 'post',
        path: `/v1/flags/{id}/${action}`,
        tags,
        security,
        summary:
          action === 'resolve'
            ? 'Close a flag as fixed (raised again if the finding recurs)'
            : 'Close a flag as accepted (the finding is not raised again)',
        request: { params: IdParam, ...jsonBody(CloseFlagBody) },
        responses: { 200: jsonContent(FlagSchema, 'The flag'), ...errorResponses(404, 409) },
      }),
      async (c) =>
        c.json(await closeFlag(ctxOf(c), c.req.valid('param').id, status, c.req.valid('json').comment), 200),
    );
  }
}
