import { z } from '@hono/zod-openapi';
import { PERSON_PATTERN } from '../../platform/auth.ts';

/** A person, as `Tessera-Actor` names them: an email or an id. */
export const ActorRef = z
  .string()
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
  key: z.string().regex(GROUP_KEY, 'letters, digits, `_`, `.` and `-`, 1-64 characters'),
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
