import { z } from '@hono/zod-openapi';

/**
 * Context values: a string of at most MAX_CONTEXT_STRING characters, a number or a boolean. Above
 * the conditions' own limit (1,024 characters, domain/condition-cost.ts), so a longer string reaches
 * the condition and fails it closed rather than failing the whole request.
 */
export const MAX_CONTEXT_STRING = 4096;
const Scalar = z.union([z.string().max(MAX_CONTEXT_STRING), z.number(), z.boolean()]);
const Json: z.ZodType<unknown> = z.unknown().openapi({ description: 'Any JSON value' });

export const ContextSchema = z
  .record(z.string().max(100), Scalar)
  .refine((r) => Object.keys(r).length <= 50, 'at most 50 keys')
  .openapi({
    description: 'Facts about this request, visible to conditions as `context`',
    example: { device_compliant: true },
    maxProperties: 50,
  });

export const CheckBody = z
  .strictObject({
    customer_id: z.string().min(1).max(255).openapi({ example: 'acme' }),
    feature: z.string().min(1).max(64).openapi({ example: 'api_calls' }),
    quantity: z
      .number()
      .int()
      .positive()
      .max(1e12)
      .optional()
      .openapi({ description: 'How much the caller wants to use (default 1)', example: 1 }),
    context: ContextSchema.optional(),
  })
  .openapi('CheckRequest');

const SourceSchema = z
  .object({
    kind: z.enum(['plan', 'addon', 'override', 'grant']),
    id: z.string(),
    ends_at: z
      .string()
      .optional()
      .openapi({ description: 'When a time-boxed override or grant ends by itself' }),
  })
  .openapi('EntitlementSource');

export const ReasonSchema = z.enum([
  'granted',
  'not_in_plan',
  'disabled_by_override',
  'limit_exceeded',
  'no_subscription',
  'subscription_inactive',
  'trial_expired',
  'past_due_grace_ended',
  'condition_failed',
  'unknown_customer',
  'unknown_feature',
]);

export const CheckResultSchema = z
  .object({
    allowed: z.boolean(),
    reason: ReasonSchema,
    customer_id: z.string(),
    feature: z.string(),
    type: z.enum(['boolean', 'config', 'metered']).optional(),
    value: Json.optional(),
    limit: z.number().nullable().optional().openapi({ description: 'null: unlimited' }),
    used: z.number().optional(),
    remaining: z.number().nullable().optional(),
    resets_at: z.string().optional(),
    overage_used: z.number().optional().openapi({
      description: 'Past a soft limit (`overage: allow`): usage this period past the limit and credits',
    }),
    sources: z.array(SourceSchema),
    version: z.number().int().openapi({ description: 'The customer’s entitlement version' }),
  })
  .openapi('CheckResult');

export const EntitlementRowSchema = z
  .object({
    feature: z.string(),
    type: z.enum(['boolean', 'config', 'metered']),
    has_access: z.boolean(),
    enabled: z.boolean().optional(),
    value: Json.optional(),
    limit: z.number().nullable().optional(),
    used: z.number().optional(),
    remaining: z.number().nullable().optional(),
    resets_at: z.string().optional(),
    overage: z.enum(['deny', 'allow']).optional().openapi({ description: 'What happens past the limit' }),
    overage_used: z
      .number()
      .optional()
      .openapi({ description: 'Usage this period past the limit and credits' }),
    sources: z.array(SourceSchema),
  })
  .openapi('CustomerEntitlement');

export const EntitlementsResultSchema = z
  .object({
    customer_id: z.string(),
    version: z.number().int(),
    evaluated_at: z.string(),
    entitlements: z.array(EntitlementRowSchema),
  })
  .openapi('CustomerEntitlements');

export type CheckResult = z.infer<typeof CheckResultSchema>;
export type EntitlementsResult = z.infer<typeof EntitlementsResultSchema>;
