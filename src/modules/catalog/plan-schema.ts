import { z } from '@hono/zod-openapi';
import { FeatureKey, immutable, PlanKey } from './schema.ts';

export const ResetSchema = z.enum(['none', 'day', 'week', 'month', 'year', 'billing_period']);
export const OverageSchema = z
  .enum(['deny', 'allow'])
  .openapi({ description: '`deny`: a hard limit; `allow`: usage past the limit is recorded as overage' });

/**
 * One plan entry as sent. Every kind's fields are listed here; which of them a feature accepts
 * depends on its type in the catalog, so that is checked by the service (a 422 naming the entry).
 */
export const EntitlementInput = z
  .strictObject({
    feature: FeatureKey,
    enabled: z.boolean().optional().openapi({ description: 'Boolean features; default true' }),
    value: z.unknown().optional().openapi({ description: 'Config features: any JSON value' }),
    limit: z
      .number()
      .int()
      .min(0)
      .nullable()
      .optional()
      .openapi({ description: 'Metered features; null is unlimited', example: 1000 }),
    reset: ResetSchema.optional().openapi({ description: 'Metered features: when usage starts over' }),
    overage: OverageSchema.optional(),
    notify_at_percent: z
      .array(z.number().int().min(1).max(100))
      .max(20)
      .optional()
      .openapi({
        description: 'Metered features: usage thresholds that raise a notification',
        example: [80, 100],
      }),
    per_seat: z
      .boolean()
      .optional()
      .openapi({ description: 'Metered features: multiply the limit by the subscription quantity' }),
    condition: z.string().min(1).max(4000).nullable().optional().openapi({
      description: 'CEL over `customer.attributes` and `context`',
      example: 'customer.attributes.region == "eu"',
    }),
  })
  .openapi('EntitlementInput');

export const EntitlementSchema = z
  .object({
    feature: z.string(),
    enabled: z.boolean().optional(),
    value: z.unknown().optional(),
    limit: z.number().int().nullable().optional(),
    reset: ResetSchema.optional(),
    overage: OverageSchema.optional(),
    notify_at_percent: z.array(z.number().int()).optional(),
    per_seat: z.boolean().optional(),
    condition: z.string().nullable(),
  })
  .openapi('Entitlement');

export const TrialInput = z
  .strictObject({
    days: z.number().int().min(1).max(365),
    on_end: z.enum(['convert', 'cancel', 'downgrade']),
    downgrade_to: PlanKey.optional().openapi({ description: 'With `on_end: downgrade`: a base plan' }),
  })
  .openapi('TrialInput');

export const TrialSchema = z
  .object({
    days: z.number().int(),
    on_end: z.enum(['convert', 'cancel', 'downgrade']),
    downgrade_to: z.string().nullable(),
  })
  .openapi('Trial');

const StripeRef = z.string().trim().min(1).max(255);
export const StripeInput = z
  .strictObject({
    price_ids: z.array(StripeRef).max(50).optional(),
    lookup_keys: z.array(StripeRef).max(50).optional(),
  })
  .openapi('PlanStripeInput');

export const StripeSchema = z
  .object({ price_ids: z.array(z.string()), lookup_keys: z.array(z.string()) })
  .openapi('PlanStripe');

const Entitlements = z.array(EntitlementInput).max(500);

export const CreatePlanBody = z
  .strictObject({
    key: PlanKey,
    name: z.string().trim().min(1).max(200).openapi({ example: 'Pro' }),
    description: z.string().max(2000).nullable().optional(),
    addon: z.boolean().optional().openapi({ description: 'An add-on stacks on a base plan; default false' }),
    trial: TrialInput.nullable().optional(),
    entitlements: Entitlements,
    stripe: StripeInput.nullable().optional(),
  })
  .openapi('CreatePlan');

export const CreatePlanVersionBody = z
  .strictObject({
    entitlements: Entitlements,
    trial: TrialInput.nullable().optional().openapi({
      description: 'Omitted: the previous version’s trial carries over; null: no trial',
    }),
    stripe: StripeInput.nullable().optional().openapi({
      description: 'Omitted: the previous version’s Stripe references carry over; null: none',
    }),
  })
  .openapi('CreatePlanVersion');

export const UpdatePlanBody = z
  .strictObject({
    name: z.string().trim().min(1).max(200).optional(),
    description: z.string().max(2000).nullable().optional(),
    addon: immutable('whether a plan is an add-on cannot be changed; create a new plan instead'),
  })
  .openapi('UpdatePlan');

export const PlanSchema = z
  .object({
    id: z.string().openapi({ example: 'plan_01jd0000000000000000000000' }),
    key: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    addon: z.boolean(),
    archived: z.boolean(),
    version: z.number().int().openapi({ description: 'The version shown (1..n)', example: 1 }),
    version_created_at: z.string(),
    trial: TrialSchema.nullable(),
    entitlements: z.array(EntitlementSchema),
    stripe: StripeSchema.nullable(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Plan');

export const PlanWithVersionsSchema = PlanSchema.extend({
  versions: z.array(z.object({ version: z.number().int(), created_at: z.string() })),
}).openapi('PlanWithVersions');

export const PlanListQuery = z.object({
  archived: z.enum(['true', 'false']).optional(),
  addon: z.enum(['true', 'false']).optional(),
});

export type EntitlementInputT = z.infer<typeof EntitlementInput>;
export type StoredEntitlement = z.infer<typeof EntitlementSchema>;
export type TrialInputT = z.infer<typeof TrialInput>;
export type StoredTrial = z.infer<typeof TrialSchema>;
export type StripeInputT = z.infer<typeof StripeInput>;
export type StoredStripe = z.infer<typeof StripeSchema>;
export type CreatePlanInput = z.infer<typeof CreatePlanBody>;
export type CreatePlanVersionInput = z.infer<typeof CreatePlanVersionBody>;
export type UpdatePlanInput = z.infer<typeof UpdatePlanBody>;
export type PlanResource = z.infer<typeof PlanSchema>;
export type PlanWithVersions = z.infer<typeof PlanWithVersionsSchema>;
