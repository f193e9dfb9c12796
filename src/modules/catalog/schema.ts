import { z } from '@hono/zod-openapi';

/** Feature and plan keys: what product code names them by, so short and URL-safe. */
export const KEY_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

export const FeatureKey = z
  .string()
  .max(64)
  .regex(KEY_PATTERN, 'a lower-case key: letters, digits, `_`, `.`, `-`, at most 64 characters')
  .openapi({ example: 'api_calls' });

export const PlanKey = z
  .string()
  .max(64)
  .regex(KEY_PATTERN, 'a lower-case key: letters, digits, `_`, `.`, `-`, at most 64 characters')
  .openapi({ example: 'pro' });

/** Path parameters are only looked up, never stored: an impossible key simply answers 404. */
export const KeyParam = z.object({ key: z.string().min(1).max(200) });

export const FeatureTypeSchema = z.enum(['boolean', 'config', 'metered']);
export const AggregationSchema = z
  .enum(['sum', 'max', 'unique'])
  .openapi({ description: 'How usage events combine within a period (metered features only)' });

/** A field that may not be sent: named in the schema so the 400 says why, not just "unknown field". */
export const immutable = (message: string) =>
  z
    .unknown()
    .refine((value) => value === undefined, { message })
    .optional()
    .openapi({ description: `Immutable: ${message}` });

const Name = z.string().trim().min(1).max(200);
const Description = z.string().max(2000);
const Unit = z.string().trim().min(1).max(50);
const StripeMeter = z
  .strictObject({
    event_name: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[A-Za-z0-9_.:-]+$/, 'must be a Stripe meter event name (letters, digits, _ . : -)')
      .openapi({ example: 'api_calls' }),
  })
  .openapi('StripeMeter', {
    description: 'The Stripe meter (by its `event_name`) this metered feature’s usage is reported to',
  });

export const CreateFeatureBody = z
  .strictObject({
    key: FeatureKey,
    name: Name.openapi({ example: 'API calls' }),
    type: FeatureTypeSchema,
    unit: Unit.nullable().optional().openapi({ example: 'call' }),
    description: Description.nullable().optional(),
    aggregation: AggregationSchema.optional().openapi({
      description: 'Metered features only; default `sum`',
    }),
    stripe_meter: StripeMeter.nullable().optional(),
  })
  .superRefine((body, ctx) => {
    if (body.aggregation !== undefined && body.type !== 'metered') {
      ctx.addIssue({
        code: 'custom',
        path: ['aggregation'],
        message: 'aggregation applies to metered features only',
      });
    }
    if (body.stripe_meter && body.type !== 'metered') {
      ctx.addIssue({
        code: 'custom',
        path: ['stripe_meter'],
        message: 'stripe_meter applies to metered features only',
      });
    }
  })
  .openapi('CreateFeature');

export const UpdateFeatureBody = z
  .strictObject({
    name: Name.optional(),
    description: Description.nullable().optional(),
    unit: Unit.nullable().optional(),
    stripe_meter: StripeMeter.nullable()
      .optional()
      .openapi({ description: 'Metered features only; null unlinks' }),
    // Named so the error says why rather than just "unknown field".
    type: immutable("a feature's type cannot be changed; create a new feature instead"),
  })
  .openapi('UpdateFeature');

export const FeatureSchema = z
  .object({
    id: z.string().openapi({ example: 'feat_01jd0000000000000000000000' }),
    key: z.string(),
    name: z.string(),
    type: FeatureTypeSchema,
    unit: z.string().nullable(),
    description: z.string().nullable(),
    aggregation: AggregationSchema.nullable().openapi({ description: 'null unless metered' }),
    stripe_meter: z.object({ event_name: z.string() }).nullable(),
    archived: z.boolean(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Feature');

export const FeatureListQuery = z.object({
  archived: z
    .enum(['true', 'false'])
    .optional()
    .openapi({ description: 'Only archived (`true`) or only active (`false`) features; both when absent' }),
});

export type CreateFeatureInput = z.infer<typeof CreateFeatureBody>;
export type UpdateFeatureInput = z.infer<typeof UpdateFeatureBody>;
export type FeatureResource = z.infer<typeof FeatureSchema>;

export const list = <T extends z.ZodType>(item: T) =>
  z.object({ data: z.array(item), next_cursor: z.string().nullable() });
