import { z } from '@hono/zod-openapi';
import { PERSON_PATTERN } from '../../platform/auth.ts';

/** A person, as `Tessera-Actor` names them: an email or an id. */
export const ActorRef = z
  .string()
  .max(254)
  .regex(PERSON_PATTERN, 'must be an email or id (letters, digits and . _ % + - @ : /)')
  .openapi({ example: 'alice@vendor.com' });

export const GROUP_KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
export const GROUP_PREFIX = 'group:';

/** An approver: a person, or `group:<key>` for every member of an actor group. */
export const ApproverRef = z
  .string()
  .min(1)
  .max(254)
  .refine(
    (s) =>
      s.startsWith(GROUP_PREFIX) ? GROUP_KEY.test(s.slice(GROUP_PREFIX.length)) : PERSON_PATTERN.test(s),
    'must be an actor (email or id) or `group:<key>`',
  )
  .openapi({ example: 'group:finance' });

export const GroupKeyParam = z.object({
  key: z.string().max(64).regex(GROUP_KEY, 'letters, digits, `_`, `.` and `-`, 1-64 characters'),
});

export const PutActorGroupBody = z
  .strictObject({
    members: z
      .array(ActorRef)
      .max(500)
      .refine((m) => new Set(m).size === m.length, 'members must not repeat'),
  })
  .openapi('PutActorGroup');

export const ActorGroupSchema = z
  .object({
    key: z.string(),
    members: z.array(z.string()),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('ActorGroup');

export type PutActorGroupInput = z.infer<typeof PutActorGroupBody>;
export type ActorGroupResource = z.infer<typeof ActorGroupSchema>;

export const CHANGE_KINDS = ['override', 'grant', 'addon', 'trial_extension'] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

export const StageSchema = z
  .strictObject({
    approvers: z.array(ApproverRef).min(1).max(50),
    timeout_hours: z.number().int().min(1).max(8760).optional(),
    on_timeout: z.enum(['deny', 'escalate']).optional().openapi({ description: 'Default `deny`' }),
    escalate_to: z.array(ApproverRef).min(1).max(50).optional(),
  })
  .superRefine((stage, ctx) => {
    if (stage.on_timeout !== undefined && stage.timeout_hours === undefined)
      ctx.addIssue({ code: 'custom', path: ['timeout_hours'], message: 'required with on_timeout' });
    if (stage.on_timeout === 'escalate' && stage.escalate_to === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['escalate_to'],
        message: 'required when on_timeout is escalate',
      });
    if (stage.on_timeout !== 'escalate' && stage.escalate_to !== undefined)
      ctx.addIssue({ code: 'custom', path: ['escalate_to'], message: 'only with on_timeout: escalate' });
  })
  .openapi('ApprovalStage');

/** A policy matches a request only when the request meets every condition given. */
export const PolicyConditionsSchema = z
  .strictObject({
    min_increase_percent: z.number().min(0).max(1_000_000).optional().openapi({
      description:
        'Metered overrides and grants only: the limit increase (credits, for a grant) over what the customer holds now, in percent, is at least this',
      example: 50,
    }),
    min_amount: z.number().min(0).max(1e15).optional().openapi({
      description: 'Grants: the amount; metered overrides: the new limit (unlimited counts as any size)',
    }),
    customer_attributes: z
      .record(z.string().min(1).max(64), z.union([z.string().max(500), z.number(), z.boolean()]))
      .refine((a) => Object.keys(a).length <= 20, 'at most 20 attributes')
      .optional()
      .openapi({
        description: 'The customer has each of these attributes with exactly this value',
        maxProperties: 20,
      }),
  })
  .openapi('ApprovalPolicyConditions');

export const CreatePolicyBody = z
  .strictObject({
    name: z.string().trim().min(1).max(200),
    kinds: z
      .array(z.enum(CHANGE_KINDS))
      .min(1)
      .max(CHANGE_KINDS.length)
      .refine((k) => new Set(k).size === k.length, 'kinds must not repeat'),
    features: z.array(z.string().min(1).max(64)).min(1).max(100).optional().openapi({
      description:
        'Feature keys the policy governs (add-on and trial extension requests match on their plan key); all when absent',
    }),
    auto_approve: z.boolean().optional(),
    stages: z.array(StageSchema).max(10).optional(),
    conditions: PolicyConditionsSchema.optional(),
  })
  .superRefine((policy, ctx) => {
    if (policy.auto_approve !== true && (policy.stages ?? []).length === 0)
      ctx.addIssue({ code: 'custom', path: ['stages'], message: 'at least one stage unless auto_approve' });
  })
  .openapi('CreateApprovalPolicy');

export const PolicySchema = z
  .object({
    id: z.string(),
    name: z.string(),
    kinds: z.array(z.enum(CHANGE_KINDS)),
    features: z.array(z.string()).nullable(),
    auto_approve: z.boolean(),
    stages: z.array(
      z.object({
        approvers: z.array(z.string()),
        timeout_hours: z.number().int().nullable(),
        on_timeout: z.enum(['deny', 'escalate']),
        escalate_to: z.array(z.string()).nullable(),
      }),
    ),
    conditions: PolicyConditionsSchema.nullable(),
    created_at: z.string(),
  })
  .openapi('ApprovalPolicy');

export type CreatePolicyInput = z.infer<typeof CreatePolicyBody>;
export type PolicyResource = z.infer<typeof PolicySchema>;
export type Stage = PolicyResource['stages'][number];
export type PolicyConditions = z.infer<typeof PolicyConditionsSchema>;
