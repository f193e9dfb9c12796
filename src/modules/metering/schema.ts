import { z } from '@hono/zod-openapi';

const Timestamp = z.iso.datetime({ offset: true });
const CustomerId = z.string().min(1).max(255).openapi({ example: 'acme' });
const FeatureKey = z.string().min(1).max(64).openapi({ example: 'api_calls' });

export const UsageEventBody = z
  .strictObject({
    customer_id: CustomerId,
    feature: FeatureKey,
    value: z.number().int().min(0).max(1e12).optional().openapi({
      description:
        '`sum` features: the amount used (default 1); `max` features: the reading whose peak counts. A non-negative integer: report in the smallest unit (bytes, ms). Ignored for `unique` features.',
      example: 1,
    }),
    member: z
      .union([z.string().min(1).max(255), z.number()])
      .optional()
      .openapi({
        description: '`unique` features only (required there): the distinct thing counted, e.g. a user id',
        example: 'user_42',
      }),
    idempotency_key: z.string().min(1).max(255).openapi({
      description: 'Unique per customer; the same key again replays the first answer and counts nothing',
      example: 'evt_01HZY3',
    }),
    timestamp: Timestamp.optional().openapi({
      description: 'When the usage happened (default now); it counts in the period containing it',
    }),
  })
  .openapi('UsageEvent');

export const MAX_BATCH = 1000;

export const UsageBatchBody = z
  .strictObject({
    events: z
      .array(z.unknown())
      .min(1)
      .max(MAX_BATCH)
      .openapi({
        description: `1 to ${MAX_BATCH} UsageEvent objects; each is validated on its own`,
        items: { $ref: '#/components/schemas/UsageEvent' },
      }),
  })
  .openapi('UsageBatch');

export const RefusalReason = z.enum([
  'limit_exceeded',
  'not_in_plan',
  'no_subscription',
  'subscription_inactive',
  'trial_expired',
  'past_due_grace_ended',
  'condition_failed',
]);

export const UsageResultSchema = z
  .object({
    accepted: z.boolean(),
    reason: RefusalReason.optional().openapi({
      description: 'Why the event was refused (nothing was counted)',
    }),
    used: z
      .number()
      .openapi({ description: 'Used in the period after this event, live reservations included' }),
    limit: z.number().nullable().openapi({ description: 'null: unlimited' }),
    remaining: z
      .number()
      .nullable()
      .openapi({ description: 'Unused limit plus available credit; null when unlimited' }),
    resets_at: z.string().nullable().openapi({ description: 'End of the period; null if it never resets' }),
    period_start: z.string(),
    overage: z.number().openapi({ description: 'The part of this event past the limit and credit' }),
    credit_used: z.number().openapi({ description: 'The part of this event paid by credit grants' }),
  })
  .openapi('UsageResult');

export const EventErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'validation_failed' }),
      message: z.string(),
      path: z.string().openapi({ example: 'events[3].value' }),
    }),
  })
  .openapi('UsageEventError');

export const UsageBatchResultSchema = z
  .object({ results: z.array(z.union([UsageResultSchema, EventErrorSchema])) })
  .openapi('UsageBatchResult');

export const CreateReservationBody = z
  .strictObject({
    customer_id: CustomerId,
    feature: FeatureKey,
    amount: z.number().int().positive().max(1e12),
    ttl_seconds: z.number().int().min(1).max(86_400).openapi({ example: 300 }),
  })
  .openapi('CreateReservation');

export const CommitReservationBody = z
  .strictObject({
    amount: z.number().int().min(0).max(1e12).optional().openapi({
      description: 'How much was used (default: all of it); the rest is released',
    }),
  })
  .openapi('CommitReservation');

export const ReservationSchema = z
  .object({
    id: z.string(),
    customer_id: z.string(),
    feature: z.string(),
    amount: z.number(),
    committed_amount: z.number().nullable(),
    status: z.enum(['held', 'committed', 'released', 'expired']),
    period_start: z.string(),
    resets_at: z.string().nullable(),
    expires_at: z.string(),
    created_at: z.string(),
    settled_at: z.string().nullable(),
    usage: UsageResultSchema.optional().openapi({ description: 'Where the customer stands after this call' }),
  })
  .openapi('Reservation');

export type UsageEventInput = z.infer<typeof UsageEventBody>;
export type UsageResult = z.infer<typeof UsageResultSchema>;
export type EventError = z.infer<typeof EventErrorSchema>;
export type ReservationResource = z.infer<typeof ReservationSchema>;
export type CreateReservationInput = z.infer<typeof CreateReservationBody>;
