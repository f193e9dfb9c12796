import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { type AppEnv, ctxOf, errorResponses, jsonBody, jsonContent, security } from '../../platform/http.ts';
import { registerCheckoutRoutes } from './checkout-routes.ts';
import { registerStripeEventRoutes } from './event-routes.ts';
import { registerReconciliationRoutes } from './reconcile-routes.ts';
import { getStripeSettings, putStripeSettings } from './settings.ts';

const StripeSettingsSchema = z
  .object({
    secret_key_set: z.boolean(),
    secret_key_hint: z
      .string()
      .nullable()
      .openapi({ description: 'The key’s prefix and last four characters', example: 'sk_test_…4242' }),
    webhook_secret_set: z.boolean(),
    lifecycle_owner: z.enum(['stripe', 'tessera']).openapi({
      description:
        '`stripe`: subscriptions change in Stripe and reach Tessera through webhooks; `tessera`: changes made through Tessera’s API are pushed to Stripe',
    }),
    updated_at: z.string().nullable(),
  })
  .openapi('StripeSettings');

const PutStripeSettings = z
  .strictObject({
    secret_key: z
      .string()
      .max(260)
      .regex(/^(sk|rk)_(test|live)_[A-Za-z0-9]{8,247}$/, 'must be a Stripe secret or restricted key')
      .nullable()
      .optional()
      .openapi({ description: 'Omitted: the stored key stays; null: removed. Never returned.' }),
    webhook_secret: z
      .string()
      .max(260)
      .regex(/^whsec_[A-Za-z0-9+/=]{8,247}$/, 'must be a Stripe webhook signing secret (whsec_…)')
      .openapi({ description: 'The signing secret of the webhook endpoint. Never returned.' }),
    lifecycle_owner: z.enum(['stripe', 'tessera']).optional(),
  })
  .openapi('PutStripeSettings');

const tags = ['Stripe'];

export function registerBillingRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/stripe/settings',
      tags,
      security,
      summary: 'What is set of the environment’s Stripe connection (secrets are never shown)',
      responses: { 200: jsonContent(StripeSettingsSchema, 'The Stripe settings'), ...errorResponses() },
    }),
    async (c) => c.json(await getStripeSettings(ctxOf(c)), 200),
  );
  app.openapi(
    createRoute({
      method: 'put',
      path: '/v1/stripe/settings',
      tags,
      security,
      summary: 'Connect the environment to Stripe: secret key, webhook signing secret, lifecycle owner',
      description:
        'The secrets are stored encrypted with a key derived from `TESSERA_SECRET_KEY` and are never returned. A key of the other mode than the environment (`sk_live_…` in `test`) answers 422.',
      request: jsonBody(PutStripeSettings),
      responses: { 200: jsonContent(StripeSettingsSchema, 'The Stripe settings'), ...errorResponses(422) },
    }),
    async (c) => c.json(await putStripeSettings(ctxOf(c), c.req.valid('json')), 200),
  );
  registerCheckoutRoutes(app);
  registerStripeEventRoutes(app);
  registerReconciliationRoutes(app);
}
