import { z } from '@hono/zod-openapi';

export const ScopeSchema = z
  .enum(['admin', 'check'])
  .openapi({ description: '`admin`: everything; `check`: check, usage, entitlements, tokens' });

export const CreateApiKeyBody = z
  .strictObject({
    name: z.string().trim().min(1).max(200).openapi({ example: 'billing backend' }),
    scopes: z
      .array(ScopeSchema)
      .min(1)
      .max(2)
      .openapi({ example: ['check'] }),
  })
  .openapi('CreateApiKey');

export const ApiKeySchema = z
  .object({
    id: z.string().openapi({ example: 'key_01jd0000000000000000000000' }),
    name: z.string(),
    scopes: z.array(ScopeSchema),
    environment: z.enum(['test', 'live']),
    prefix: z.string().openapi({
      description: 'The first characters of the secret, to recognise it',
      example: 'sk_test_Ab3d',
    }),
    created_at: z.string().openapi({ example: '2026-11-30T12:00:00.000Z' }),
    revoked_at: z.string().nullable(),
  })
  .openapi('ApiKey');

export const CreatedApiKeySchema = ApiKeySchema.extend({
  secret: z.string().nullable().openapi({
    description: 'Shown this once; store it now. null in an idempotent replay (see `secret_redacted`)',
    example: 'sk_test_...',
  }),
  secret_redacted: z
    .boolean()
    .optional()
    .openapi({ description: 'true in an idempotent replay, whose `secret` is null' }),
}).openapi('CreatedApiKey');

export type ApiKey = z.infer<typeof ApiKeySchema>;
export type CreatedApiKey = z.infer<typeof CreatedApiKeySchema>;
