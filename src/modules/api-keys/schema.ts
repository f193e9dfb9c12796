import { z } from '@hono/zod-openapi';

export const ScopeSchema = z
  .enum(['admin', 'check'])
  .openapi({ description: '`admin`: everything; `check`: check, usage, entitlements, tokens' });

/** Requests per second for this key on each node; null follows TESSERA_RATE_LIMIT_DEFAULT, 0 is unlimited. */
const RateLimitField = z
  .number()
  .int()
  .min(0)
  .max(1_000_000)
  .nullable()
  .openapi({
    description:
      'Requests per second this key may make on each API node (a token bucket holding one second’s worth). ' +
      '`null` (the default) follows `TESSERA_RATE_LIMIT_DEFAULT`; `0` is unlimited. Over the limit: 429 `rate_limited` with `Retry-After`.',
    example: 500,
  });

export const CreateApiKeyBody = z
  .strictObject({
    name: z.string().trim().min(1).max(200).openapi({ example: 'billing backend' }),
    scopes: z
      .array(ScopeSchema)
      .min(1)
      .max(2)
      .openapi({ example: ['check'] }),
    rate_limit_per_second: RateLimitField.optional(),
  })
  .openapi('CreateApiKey');

export const UpdateApiKeyBody = z
  .strictObject({
    name: z.string().trim().min(1).max(200).optional().openapi({ example: 'billing backend' }),
    rate_limit_per_second: RateLimitField.optional(),
  })
  .refine((body) => Object.keys(body).length > 0, 'send at least one of name, rate_limit_per_second')
  .openapi('UpdateApiKey');

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
    rate_limit_per_second: z.number().int().nullable().openapi({
      description: 'Requests per second on each node; null follows the server’s default, 0 is unlimited',
    }),
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
