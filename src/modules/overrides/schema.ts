import { z } from '@hono/zod-openapi';

const Timestamp = z.iso.datetime({ offset: true });
const Reason = z.string().trim().min(1).max(1000).openapi({
  description: 'Why this exception exists (kept in the audit log)',
  example: 'Design partner, agreed by sales',
});
const Condition = z.string().min(1).max(2000).openapi({
  description: 'CEL over `customer.attributes` and `context`',
  example: "customer.attributes.region in ['eu','us']",
});

export const CreateOverrideBody = z
  .strictObject({
    feature: z.string().min(1).max(64),
    enabled: z.boolean().optional().openapi({ description: 'Boolean features' }),
    value: z.unknown().optional().openapi({ description: 'Config features: any JSON' }),
    limit: z
      .number()
      .int()
      .min(0)
      .nullable()
      .optional()
      .openapi({ description: 'Metered features; null is unlimited' }),
    condition: Condition.optional(),
    starts_at: Timestamp.optional(),
    expires_at: Timestamp.optional().openapi({
      description: 'Time-boxed (just-in-time) exception: ends by itself',
    }),
    reason: Reason,
  })
  .openapi('CreateOverride');

export const OverrideSchema = z
  .object({
    id: z.string(),
    customer_id: z.string(),
    feature: z.string(),
    enabled: z.boolean().optional(),
    value: z.unknown().optional(),
    limit: z.number().nullable().optional(),
    condition: z.string().nullable(),
    starts_at: z.string(),
    expires_at: z.string().nullable(),
    ended_at: z.string().nullable(),
    status: z.enum(['scheduled', 'active', 'expired', 'ended']),
    reason: z.string(),
    created_by: z.object({ type: z.string(), id: z.string().nullable(), name: z.string().nullable() }),
    created_at: z.string(),
  })
  .openapi('Override');

export const CreateGrantBody = z
  .strictObject({
    feature: z.string().min(1).max(64),
    amount: z.number().int().positive().max(1e15).openapi({
      description: 'Whole units of the metered feature (quotas are whole numbers)',
      example: 1000,
    }),
    priority: z
      .number()
      .int()
      .min(0)
      .max(1000)
      .optional()
      .openapi({ description: 'Lower is used first (default 0)' }),
    effective_at: Timestamp.optional(),
    expires_at: Timestamp.optional(),
    reason: Reason,
  })
  .openapi('CreateGrant');

export const GrantSchema = z
  .object({
    id: z.string(),
    customer_id: z.string(),
    feature: z.string(),
    amount: z.number(),
    priority: z.number().int(),
    effective_at: z.string(),
    expires_at: z.string().nullable(),
    voided_at: z.string().nullable(),
    status: z.enum(['pending', 'active', 'expired', 'voided']),
    remaining: z.number().optional().openapi({
      description:
        'In listings: the credit it has left now (its unburnt balance; its whole amount while pending; 0 once expired or voided)',
    }),
    reason: z.string(),
    created_by: z.object({ type: z.string(), id: z.string().nullable(), name: z.string().nullable() }),
    created_at: z.string(),
  })
  .openapi('CreditGrant');

export type CreateOverrideInput = z.infer<typeof CreateOverrideBody>;
export type OverrideResource = z.infer<typeof OverrideSchema>;
export type CreateGrantInput = z.infer<typeof CreateGrantBody>;
export type GrantResource = z.infer<typeof GrantSchema>;
