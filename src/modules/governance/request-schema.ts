import { z } from '@hono/zod-openapi';
import { CHANGE_KINDS } from './schema.ts';

export const CreateAccessRequestBody = z
  .strictObject({
    customer_id: z.string().min(1).max(255),
    kind: z.enum(CHANGE_KINDS),
    change: z
      .record(z.string().max(100), z.unknown())
      .refine((change) => Object.keys(change).length <= 50, 'at most 50 fields')
      .openapi({
        description:
          'The body the direct route takes: an override, a credit grant, or `{plan}` for an add-on; `{subscription_id, days}` for a trial extension',
        maxProperties: 50,
      }),
    justification: z.string().trim().min(1).max(2000),
    duration_hours: z.number().int().min(1).max(8760).optional().openapi({
      description: 'Just-in-time access: the applied change ends this many hours after it is applied',
    }),
  })
  .openapi('CreateAccessRequest');

/** `change` of a `trial_extension` request. */
export const TrialExtensionBody = z
  .strictObject({
    subscription_id: z.string().min(1).max(100),
    days: z.number().int().min(1).max(365),
  })
  .openapi('TrialExtensionChange');

export const DecideBody = z
  .strictObject({ comment: z.string().trim().max(2000).optional() })
  .openapi('Decision');

export const AccessRequestSchema = z
  .object({
    id: z.string(),
    customer_id: z.string(),
    kind: z.enum(CHANGE_KINDS),
    change: z.record(z.string(), z.unknown()),
    justification: z.string(),
    duration_hours: z.number().int().nullable(),
    status: z.enum(['pending', 'applied', 'denied', 'expired']),
    stage: z.number().int().openapi({ description: 'Index of the stage awaiting a decision (0-based)' }),
    stage_deadline_at: z
      .string()
      .nullable()
      .openapi({ description: 'When the pending stage times out; null when it cannot' }),
    policy_id: z.string(),
    requested_by: z.string(),
    decisions: z.array(z.record(z.string(), z.unknown())),
    applied: z.object({ kind: z.string(), id: z.string(), expires_at: z.string().nullable() }).optional(),
    created_at: z.string(),
    decided_at: z.string().nullable(),
  })
  .openapi('AccessRequest');

export type CreateAccessRequestInput = z.infer<typeof CreateAccessRequestBody>;
export type AccessRequestResource = z.infer<typeof AccessRequestSchema>;
