import { z } from '@hono/zod-openapi';

export const SOD_ACTIONS = ['deny', 'require_approval'] as const;
export const SOD_DUTIES = ['creator_may_not_approve_extension'] as const;
export type SodDuty = (typeof SOD_DUTIES)[number];

const FeatureKey = z.string().min(1).max(64);

/**
 * Two forms: features no customer may hold two of at once (`features`, `action`), or an
 * incompatible duty (`duty`, `min_amount?`). Which form is meant is read from the fields given.
 */
export const CreateSodRuleBody = z
  .strictObject({
    name: z.string().trim().min(1).max(200),
    features: z
      .array(FeatureKey)
      .max(50)
      .optional()
      .openapi({
        description:
          'At least two distinct feature keys of this environment; a customer may hold at most one',
        example: ['payments_create', 'payments_approve'],
      }),
    action: z.enum(SOD_ACTIONS).optional().openapi({
      description:
        '`deny`: a direct change that breaks the rule answers 409 `sod_conflict`; `require_approval`: it becomes an access request',
    }),
    duty: z.enum(SOD_DUTIES).optional().openapi({
      description:
        '`creator_may_not_approve_extension`: whoever created a live override or grant may not approve a request for the same customer and feature',
    }),
    min_amount: z.number().min(0).max(1e15).optional().openapi({
      description:
        'With `duty`: only grants of at least this amount, and metered overrides of at least this limit, count',
    }),
  })
  .superRefine((rule, ctx) => {
    if (rule.duty !== undefined) {
      for (const field of ['features', 'action'] as const)
        if (rule[field] !== undefined)
          ctx.addIssue({ code: 'custom', path: [field], message: 'not with duty' });
      return;
    }
    if (rule.min_amount !== undefined)
      ctx.addIssue({ code: 'custom', path: ['min_amount'], message: 'only with duty' });
    if (rule.features === undefined)
      ctx.addIssue({ code: 'custom', path: ['features'], message: 'required (or give duty)' });
    if (rule.action === undefined)
      ctx.addIssue({ code: 'custom', path: ['action'], message: 'required with features' });
  })
  .openapi('CreateSodRule');

export const SodRuleSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    features: z.array(z.string()).nullable(),
    action: z.enum(SOD_ACTIONS).nullable(),
    duty: z.enum(SOD_DUTIES).nullable(),
    min_amount: z.number().nullable(),
    created_at: z.string(),
    deleted_at: z.string().nullable(),
  })
  .openapi('SodRule');

export type CreateSodRuleInput = z.infer<typeof CreateSodRuleBody>;
export type SodRuleResource = z.infer<typeof SodRuleSchema>;
