import { z } from '@hono/zod-openapi';

const Timestamp = z.iso.datetime({ offset: true });
const PlanKey = z.string().min(1).max(64).openapi({ example: 'pro' });
const PlanVersion = z
  .number()
  .int()
  .min(1)
  .openapi({ description: 'Omitted: the latest version', example: 2 });
const Timing = z
  .enum(['immediate', 'period_end'])
  .openapi({ description: '`immediate`: now; `period_end`: when the current period (or trial) ends' });

export const SubscriptionStatusSchema = z
  .enum(['scheduled', 'trialing', 'active', 'past_due', 'paused', 'canceled', 'expired'])
  .openapi({
    description:
      'The status now, derived from the stored timestamps; `scheduled` until `started_at`, then `trialing` or `active` by itself',
  });

export const CustomerParam = z.object({ customer_id: z.string().min(1).max(255) });
export const SubscriptionParam = z.object({ id: z.string().min(1).max(100) });

export const CreateSubscriptionBody = z
  .strictObject({
    plan: PlanKey,
    plan_version: PlanVersion.optional(),
    quantity: z.number().int().min(1).max(1_000_000).optional().openapi({ description: 'Seats (default 1)' }),
    trial_days: z.number().int().min(0).max(730).optional().openapi({
      description:
        'Overrides the plan’s trial length (0: no trial). When repeat trials are off and the customer already trialled this plan, an explicit trial answers 409 `trial_already_used`; a trial that comes from the plan is silently left out.',
    }),
    starts_at: Timestamp.optional().openapi({ description: 'Default now; may be in the past or the future' }),
  })
  .openapi('CreateSubscription');

export const ChangeSubscriptionBody = z
  .strictObject({ plan: PlanKey, plan_version: PlanVersion.optional(), timing: Timing })
  .openapi('ChangeSubscription');

export const CancelSubscriptionBody = z.strictObject({ timing: Timing }).openapi('CancelSubscription');

export const UpdateSubscriptionBody = z
  .strictObject({ quantity: z.number().int().min(1).max(1_000_000).openapi({ description: 'Seats' }) })
  .openapi('UpdateSubscription');

export const SubscriptionSchema = z
  .object({
    id: z.string().openapi({ example: 'sub_01jd0000000000000000000000' }),
    customer_id: z.string(),
    plan: z.string(),
    plan_version: z.number().int(),
    addon: z.boolean(),
    status: SubscriptionStatusSchema,
    quantity: z.number().int(),
    started_at: z.string(),
    trial_ends_at: z.string().nullable(),
    current_period_start: z.string(),
    current_period_end: z.string(),
    cancel_at_period_end: z.boolean(),
    scheduled_change: z
      .object({ plan: z.string(), plan_version: z.number().int().nullable(), at: z.string() })
      .nullable()
      .openapi({ description: '`plan_version` null: the plan’s latest version when the change applies' }),
    ended_at: z.string().nullable(),
    billing_anchor: z.string(),
    trial_on_end: z.enum(['convert', 'cancel', 'downgrade']).nullable(),
    trial_downgrade_to: z.string().nullable(),
    past_due_since: z.string().nullable(),
    paused_at: z.string().nullable(),
    stripe: z.object({ subscription_id: z.string(), item_id: z.string().nullable() }).nullable().openapi({
      description: 'Read-only: the Stripe subscription (and its item) this one is kept in step with',
    }),
  })
  .openapi('Subscription');

export const SubscriptionPage = z
  .object({ data: z.array(SubscriptionSchema), next_cursor: z.string().nullable() })
  .openapi('SubscriptionPage');

export type CreateSubscriptionInput = z.infer<typeof CreateSubscriptionBody>;
export type ChangeSubscriptionInput = z.infer<typeof ChangeSubscriptionBody>;
export type SubscriptionResource = z.infer<typeof SubscriptionSchema>;
