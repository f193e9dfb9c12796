import { z } from '@hono/zod-openapi';
import { ApproverRef } from './schema.ts';

export const SUBJECT_KINDS = ['override', 'grant'] as const;
export type SubjectKind = (typeof SUBJECT_KINDS)[number];
export const REVIEW_DECISIONS = ['keep', 'remove'] as const;
export type ReviewDecision = (typeof REVIEW_DECISIONS)[number];
export const RECURRENCES = ['none', 'monthly', 'quarterly'] as const;
export const FLAG_KINDS = ['overlap', 'orphan', 'spike', 'sod'] as const;
export type FlagKind = (typeof FLAG_KINDS)[number];
export const FLAG_STATUSES = ['open', 'resolved', 'dismissed'] as const;

export const DEFAULT_WINDOW_DAYS = 90;

const unique = <T>(items: T[]) => new Set(items).size === items.length;

export const ReviewScopeSchema = z
  .strictObject({
    kinds: z
      .array(z.enum(SUBJECT_KINDS))
      .min(1)
      .max(2)
      .refine(unique, 'kinds must not repeat')
      .optional()
      .openapi({ description: 'Overrides, grants or both (default both)' }),
    features: z
      .array(z.string().min(1).max(64))
      .min(1)
      .max(100)
      .optional()
      .openapi({ description: 'Only exceptions on these features (default all)' }),
    min_amount: z.number().int().min(0).max(1e15).optional().openapi({
      description: 'Only credit grants of at least this amount (overrides are not filtered by it)',
    }),
  })
  .openapi('AccessReviewScope');

export const CreateReviewBody = z
  .strictObject({
    name: z.string().trim().min(1).max(200),
    scope: ReviewScopeSchema,
    reviewers: z.array(ApproverRef).min(1).max(50).refine(unique, 'reviewers must not repeat'),
    due_at: z.iso.datetime({ offset: true }),
    default_decision: z.enum(['keep', 'remove', 'recommendation']).openapi({
      description: 'What undecided items become when the campaign is due',
    }),
    recurrence: z.enum(RECURRENCES).optional().openapi({
      description: 'A recurring campaign opens its successor (due one period later) when it completes',
    }),
    window_days: z
      .number()
      .int()
      .min(1)
      .max(730)
      .optional()
      .openapi({
        description: `Usage window for recommendations (default ${DEFAULT_WINDOW_DAYS} days)`,
      }),
    collect_flags: z.boolean().optional().openapi({
      description: 'Exceptions flagged by the anomaly scan while the campaign is open join it as items',
    }),
  })
  .openapi('CreateAccessReview');

export const ReviewItemSchema = z
  .object({
    id: z.string(),
    subject: z.object({
      kind: z.enum(SUBJECT_KINDS),
      id: z.string(),
      customer_id: z.string(),
      feature: z.string(),
    }),
    recommendation: z.enum(REVIEW_DECISIONS),
    evidence: z.record(z.string(), z.unknown()).openapi({
      description: 'Why: usage in the window (`used`, `window_days`, `basis`), or the flag that added it',
    }),
    flag_id: z.string().nullable(),
    decision: z.enum(REVIEW_DECISIONS).nullable(),
    decided_by: z.string().nullable(),
    decided_via: z.enum(['reviewer', 'default']).nullable(),
    comment: z.string().nullable(),
    decided_at: z.string().nullable(),
  })
  .openapi('AccessReviewItem');

export const ReviewSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    scope: z.record(z.string(), z.unknown()),
    reviewers: z.array(z.string()),
    due_at: z.string(),
    default_decision: z.enum(['keep', 'remove', 'recommendation']),
    recurrence: z.enum(RECURRENCES),
    window_days: z.number().int(),
    collect_flags: z.boolean(),
    status: z.enum(['open', 'completed']),
    previous_id: z.string().nullable(),
    created_by: z.string().nullable(),
    created_at: z.string(),
    completed_at: z.string().nullable(),
    items: z.array(ReviewItemSchema).optional().openapi({ description: 'Every item (not in listings)' }),
    item_counts: z
      .object({ total: z.number().int(), undecided: z.number().int() })
      .openapi({ description: 'How many items, and how many still undecided' }),
  })
  .openapi('AccessReview');

export const DecideItemBody = z
  .strictObject({
    decision: z.enum(REVIEW_DECISIONS),
    comment: z.string().trim().max(2000).optional(),
  })
  .openapi('AccessReviewDecision');

export const ReviewListQuery = z.object({ status: z.enum(['open', 'completed']).optional() });

export const FlagSchema = z
  .object({
    id: z.string(),
    customer_id: z.string(),
    kind: z.enum(FLAG_KINDS),
    subject: z
      .string()
      .openapi({ description: 'What the flag is about: one open flag per customer, kind and subject' }),
    detail: z.record(z.string(), z.unknown()),
    raised_at: z.string(),
    status: z.enum(FLAG_STATUSES),
    closed_at: z.string().nullable(),
    closed_by: z.string().nullable(),
    comment: z.string().nullable(),
  })
  .openapi('AnomalyFlag');

export const FlagListQuery = z.object({
  status: z.enum(FLAG_STATUSES).optional(),
  kind: z.enum(FLAG_KINDS).optional(),
  customer_id: z.string().min(1).max(255).optional(),
});

export const CloseFlagBody = z
  .strictObject({ comment: z.string().trim().max(2000).optional() })
  .openapi('CloseAnomalyFlag');

export type CreateReviewInput = z.infer<typeof CreateReviewBody>;
export type ReviewResource = z.infer<typeof ReviewSchema>;
export type ReviewItemResource = z.infer<typeof ReviewItemSchema>;
export type FlagResource = z.infer<typeof FlagSchema>;
