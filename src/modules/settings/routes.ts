import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { type AppEnv, ctxOf, errorResponses, jsonBody, jsonContent, security } from '../../platform/http.ts';
import { getSettings, updateSettings } from './service.ts';

const SettingsSchema = z
  .object({
    past_due_grace_days: z
      .number()
      .openapi({ description: 'Days a past_due subscription keeps full access', example: 3 }),
    fallback_plan: z
      .string()
      .nullable()
      .openapi({ description: 'Base plan granted when a subscription grants nothing' }),
    allow_repeat_trials: z
      .boolean()
      .openapi({ description: 'Whether a customer may trial the same plan twice' }),
  })
  .openapi('EnvironmentSettings');

const PatchSettings = z
  .strictObject({
    past_due_grace_days: z.number().min(0).max(90).optional(),
    fallback_plan: z.string().max(64).nullable().optional(),
    allow_repeat_trials: z.boolean().optional(),
  })
  .openapi('UpdateEnvironmentSettings');

const tags = ['Settings'];

export function registerSettingsRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/settings',
      tags,
      security,
      summary: 'The environment’s access policy',
      responses: { 200: jsonContent(SettingsSchema, 'Settings'), ...errorResponses() },
    }),
    async (c) => c.json(await getSettings(ctxOf(c)), 200),
  );
  app.openapi(
    createRoute({
      method: 'patch',
      path: '/v1/settings',
      tags,
      security,
      summary: 'Change the grace period, fallback plan or trial rule',
      request: jsonBody(PatchSettings),
      responses: { 200: jsonContent(SettingsSchema, 'Settings'), ...errorResponses(422) },
    }),
    async (c) => c.json(await updateSettings(ctxOf(c), c.req.valid('json')), 200),
  );
}
