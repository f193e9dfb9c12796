import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { stream } from 'hono/streaming';
import { type Ctx, reader, requireScope } from '../../platform/context.ts';
import { type AppEnv, ctxOf, errorResponses, jsonContent, ListQuery, security } from '../../platform/http.ts';
import { decodeCursor, encodeCursor } from '../../platform/pagination.ts';
import { verifyAuditTrail, writeCheckpoint } from './checkpoints.ts';
import { type AuditFilter, listAuditEvents } from './repo.ts';

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
      person: z.string().optional().openapi({ description: 'The person the key acted for (Tessera-Actor)' }),
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
    .openapi({ description: 'API key id or name, the person it acted for, or `system` / `stripe`' }),
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
  description: 'Writes a signed checkpoint of the chain head first, so every export is covered by one.',
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
  summary: 'Recompute the hash chain of this environment and check its signed checkpoints',
  responses: {
    200: jsonContent(
      z
        .object({
          ok: z.boolean(),
          checked: z.number().int().openapi({ description: 'Events whose link and hash hold' }),
          first_broken_id: z.string().optional(),
          checkpoints_checked: z
            .number()
            .int()
            .openapi({ description: 'Signed checkpoints that hold, before the first that does not' }),
          first_broken_checkpoint: z
            .object({
              id: z.string(),
              created_at: z.string(),
              reason: z.enum([
                'signed_with_another_key',
                'bad_signature',
                'out_of_sequence',
                'event_missing',
                'event_mismatch',
              ]),
            })
            .optional()
            .openapi({
              description:
                'The first checkpoint that no longer matches: `signed_with_another_key` after TESSERA_SECRET_KEY changed, `bad_signature` for an edited checkpoint, `out_of_sequence` when one was deleted, `event_missing`/`event_mismatch` when the chain no longer holds the signed event',
            }),
        })
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
    await writeCheckpoint(ctx.deps, ctx.environment, ctx.deps.clock.now());
    c.header('content-type', 'application/x-ndjson');
    // A streamed body cannot carry the route's typed response; the OpenAPI entry documents it.
    return stream(c, async (s) => {
      for await (const event of exportRows(ctx, filter)) await s.write(`${JSON.stringify(event)}\n`);
    }) as never;
  });
  app.openapi(verify, async (c) => {
    const ctx = ctxOf(c);
    requireScope(ctx, 'admin');
    return c.json(await verifyAuditTrail(reader(ctx), ctx.deps.secrets, ctx.environment), 200);
  });
}
