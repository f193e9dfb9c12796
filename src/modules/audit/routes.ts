import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { stream } from 'hono/streaming';
import { type Ctx, reader, requireScope } from '../../platform/context.ts';
import { type AppEnv, ctxOf, errorResponses, jsonContent, ListQuery, security } from '../../platform/http.ts';
import { decodeCursor, encodeCursor } from '../../platform/pagination.ts';
import { type AuditFilter, listAuditEvents, verifyAuditChain } from './repo.ts';

const tags = ['Audit'];

const AuditEventSchema = z
  .object({
    id: z.string(),
    environment: z.string(),
    chain_index: z.number().int(),
    actor: z.object({
      type: z.enum(['api_key', 'system', 'stripe']),
      id: z.string().nullable(),
      name: z.string().nullable(),
    }),
    action: z.string().openapi({ example: 'plan.created' }),
    target: z.object({ type: z.string(), id: z.string() }),
    customer_id: z.string().nullable(),
    before: z.unknown(),
    after: z.unknown(),
    request_id: z.string().nullable(),
    at: z.string(),
    prev_hash: z.string(),
    hash: z.string(),
  })
  .openapi('AuditEvent');

const FilterQuery = z.object({
  customer_id: z.string().max(255).optional(),
  actor: z
    .string()
    .max(255)
    .optional()
    .openapi({ description: 'API key id or name, or `system` / `stripe`' }),
  action: z
    .string()
    .max(100)
    .optional()
    .openapi({ description: 'Exact action, or a prefix ending in `*` (e.g. `plan.*`)' }),
  since: z.iso.datetime({ offset: true }).optional(),
  until: z.iso.datetime({ offset: true }).optional(),
});

function filterOf(q: z.infer<typeof FilterQuery>): AuditFilter {
  return {
    ...(q.customer_id !== undefined ? { customerId: q.customer_id } : {}),
    ...(q.actor !== undefined ? { actor: q.actor } : {}),
    ...(q.action !== undefined ? { action: q.action } : {}),
    ...(q.since !== undefined ? { since: new Date(q.since) } : {}),
    ...(q.until !== undefined ? { until: new Date(q.until) } : {}),
  };
}

const list = createRoute({
  method: 'get',
  path: '/v1/audit-events',
  tags,
  security,
  summary: 'List audit events, oldest first',
  request: { query: ListQuery.extend(FilterQuery.shape) },
  responses: {
    200: jsonContent(
      z.object({ data: z.array(AuditEventSchema), next_cursor: z.string().nullable() }),
      'A page of events',
    ),
    ...errorResponses(),
  },
});

const exportEvents = createRoute({
  method: 'get',
  path: '/v1/audit-events/export',
  tags,
  security,
  summary: 'Export audit events as NDJSON (streamed)',
  request: { query: FilterQuery },
  responses: {
    200: { description: 'One event per line', content: { 'application/x-ndjson': { schema: z.string() } } },
    ...errorResponses(),
  },
});

const verify = createRoute({
  method: 'get',
  path: '/v1/audit-events/verify',
  tags,
  security,
  summary: 'Recompute the hash chain of this environment',
  responses: {
    200: jsonContent(
      z
        .object({ ok: z.boolean(), checked: z.number().int(), first_broken_id: z.string().optional() })
        .openapi('AuditVerification'),
      'The verification result',
    ),
    ...errorResponses(),
  },
});

async function* exportRows(ctx: Ctx, filter: AuditFilter) {
  let afterIndex: number | undefined;
  for (;;) {
    const rows = await listAuditEvents(
      reader(ctx),
      ctx.environment,
      { ...filter, ...(afterIndex !== undefined ? { afterIndex } : {}) },
      500,
    );
    for (const row of rows) yield row;
    if (rows.length < 500) return;
    afterIndex = rows[rows.length - 1]!.chain_index;
  }
}

export function registerAuditRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(list, async (c) => {
    const ctx = ctxOf(c);
    requireScope(ctx, 'admin');
    const q = c.req.valid('query');
    const after = decodeCursor<{ i: number }>(q.cursor, { i: 'number' });
    const rows = await listAuditEvents(
      reader(ctx),
      ctx.environment,
      { ...filterOf(q), ...(after ? { afterIndex: after.i } : {}) },
      q.limit + 1,
    );
    const more = rows.length > q.limit;
    const data = more ? rows.slice(0, q.limit) : rows;
    const last = data[data.length - 1];
    return c.json({ data, next_cursor: more && last ? encodeCursor({ i: last.chain_index }) : null }, 200);
  });
  app.openapi(exportEvents, async (c) => {
    const ctx = ctxOf(c);
    requireScope(ctx, 'admin');
    const filter = filterOf(c.req.valid('query'));
    c.header('content-type', 'application/x-ndjson');
    // A streamed body cannot carry the route's typed response; the OpenAPI entry documents it.
    return stream(c, async (s) => {
      for await (const event of exportRows(ctx, filter)) await s.write(`${JSON.stringify(event)}\n`);
    }) as never;
  });
  app.openapi(verify, async (c) => {
    const ctx = ctxOf(c);
    requireScope(ctx, 'admin');
    return c.json(await verifyAuditChain(reader(ctx), ctx.environment), 200);
  });
}
