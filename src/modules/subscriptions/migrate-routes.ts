import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { type AppEnv, ctxOf, errorResponses, jsonBody, jsonContent, security } from '../../platform/http.ts';
import { migratePlanVersion } from './migrate.ts';
import { SubscriptionStatusSchema } from './schema.ts';

const Version = z.number().int().min(1);

export const MigratePlanBody = z
  .strictObject({
    from_version: Version.openapi({ example: 1 }),
    to_version: Version.openapi({ example: 2 }),
    dry_run: z.boolean().openapi({ description: 'true: only list who gains and loses what' }),
  })
  .openapi('MigratePlan');

const LimitChange = z.object({
  feature: z.string(),
  from: z.number().nullable(),
  to: z.number().nullable(),
  direction: z.enum(['raised', 'lowered']),
});
const Impact = z.object({
  features_added: z.array(z.string()),
  features_removed: z.array(z.string()),
  limits_changed: z.array(LimitChange).openapi({ description: 'Per-seat limits multiplied by the quantity' }),
  values_changed: z.array(z.object({ feature: z.string(), from: z.unknown(), to: z.unknown() })),
  settings_changed: z.array(
    z.object({
      feature: z.string(),
      field: z.enum(['reset', 'overage', 'condition', 'per_seat']),
      from: z.unknown(),
      to: z.unknown(),
    }),
  ),
});

export const MigrationResultSchema = z
  .object({
    plan: z.string(),
    from_version: z.number().int(),
    to_version: z.number().int(),
    dry_run: z.boolean(),
    affected: z.number().int().openapi({ description: 'Live subscriptions on from_version' }),
    migrated: z.number().int().openapi({ description: 'Moved by this run (0 for a dry run)' }),
    changes: Impact.openapi({ description: 'The version change itself, for one seat' }),
    subscriptions: z.array(
      Impact.extend({
        subscription_id: z.string(),
        customer_id: z.string(),
        status: SubscriptionStatusSchema,
        quantity: z.number().int(),
      }),
    ),
    truncated: z.boolean().openapi({ description: 'true: `subscriptions` lists only the first 1000' }),
  })
  .openapi('PlanMigration');

export function registerPlanMigrationRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/plans/{key}/migrate',
      tags: ['Subscriptions'],
      security,
      summary: 'Move live subscriptions from one plan version to another (or preview it)',
      description:
        'A dry run lists, per live subscription on `from_version`, the features its customer gains and loses and the limits and values that change. A real run moves them in batches, auditing each.',
      request: { params: z.object({ key: z.string().min(1).max(200) }), ...jsonBody(MigratePlanBody) },
      responses: {
        200: jsonContent(MigrationResultSchema, 'What changes, and for whom'),
        ...errorResponses(404, 422),
      },
    }),
    async (c) =>
      c.json(await migratePlanVersion(ctxOf(c), c.req.valid('param').key, c.req.valid('json')), 200),
  );
}
