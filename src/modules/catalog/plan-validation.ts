/**
 * Checks a plan version's content against the catalog and turns it into its stored form (API shape
 * with defaults filled in). Every problem is reported at once, each naming its entry
 * (`entitlements[2].limit`), as a 422: the body was well-formed, the catalog cannot accept it.
 */
import { ConditionSyntaxError, compileCondition } from '../../domain/conditions.ts';
import type { FeatureType } from '../../domain/types.ts';
import type { TxCtx } from '../../platform/context.ts';
import { type FieldError, Unprocessable } from '../../platform/errors.ts';
import type {
  EntitlementInputT,
  StoredEntitlement,
  StoredStripe,
  StoredTrial,
  StripeInputT,
  TrialInputT,
} from './plan-schema.ts';

type Code = 'invalid_entitlement' | 'invalid_condition' | 'invalid_trial';
type Problem = FieldError & { code: Code };

export interface PlanContentInput {
  entitlements: EntitlementInputT[];
  trial: TrialInputT | null;
  stripe: StripeInputT | null;
}

export interface StoredPlanContent {
  entitlements: StoredEntitlement[];
  trial: StoredTrial | null;
  stripe: StoredStripe | null;
}

type KindField = 'enabled' | 'value' | 'limit' | 'reset' | 'overage' | 'notify_at_percent' | 'per_seat';
const ALLOWED: Record<FeatureType, readonly KindField[]> = {
  boolean: ['enabled'],
  config: ['value'],
  metered: ['limit', 'reset', 'overage', 'notify_at_percent', 'per_seat'],
};
const REQUIRED: Record<FeatureType, readonly KindField[]> = {
  boolean: [],
  config: ['value'],
  metered: ['limit', 'reset', 'overage'],
};
const KIND_FIELDS: readonly KindField[] = [
  'enabled',
  'value',
  'limit',
  'reset',
  'overage',
  'notify_at_percent',
  'per_seat',
];

function normalise(entry: EntitlementInputT, type: FeatureType): StoredEntitlement {
  const condition = entry.condition ?? null;
  switch (type) {
    case 'boolean':
      return { feature: entry.feature, enabled: entry.enabled ?? true, condition };
    case 'config':
      return { feature: entry.feature, value: entry.value, condition };
    case 'metered':
      return {
        feature: entry.feature,
        limit: entry.limit ?? null,
        reset: entry.reset ?? 'none',
        overage: entry.overage ?? 'deny',
        notify_at_percent: [...new Set(entry.notify_at_percent ?? [])].sort((a, b) => a - b),
        per_seat: entry.per_seat ?? false,
        condition,
      };
  }
}

async function checkEntitlements(
  t: TxCtx,
  entries: EntitlementInputT[],
  problems: Problem[],
): Promise<StoredEntitlement[]> {
  const keys = [...new Set(entries.map((e) => e.feature))];
  // FOR SHARE: a feature cannot be archived while a version naming it is being written.
  const rows =
    keys.length === 0
      ? []
      : await t.tx
          .selectFrom('features')
          .select(['key', 'type', 'archived_at'])
          .where('environment', '=', t.environment)
          .where('key', 'in', keys)
          .forShare()
          .execute();
  const features = new Map(rows.map((r) => [r.key, r]));
  const firstSeen = new Map<string, number>();
  const stored: StoredEntitlement[] = [];
  for (const [i, entry] of entries.entries()) {
    const add = (field: string, message: string, code: Code = 'invalid_entitlement') =>
      problems.push({ path: `entitlements[${i}].${field}`, message, code });
    const earlier = firstSeen.get(entry.feature);
    const feature = features.get(entry.feature);
    if (earlier !== undefined) {
      add('feature', `feature '${entry.feature}' is already listed at entitlements[${earlier}]`);
      continue;
    }
    firstSeen.set(entry.feature, i);
    if (!feature || feature.archived_at) {
      add(
        'feature',
        feature
          ? `feature '${entry.feature}' is archived and cannot be added to a new plan version`
          : `no feature '${entry.feature}' exists in this environment`,
      );
      continue;
    }
    const type = feature.type as FeatureType;
    const before = problems.length;
    for (const field of KIND_FIELDS) {
      const present = entry[field] !== undefined;
      if (present && !ALLOWED[type].includes(field)) {
        add(field, `'${field}' does not apply to '${entry.feature}', a ${type} feature`);
      } else if (!present && REQUIRED[type].includes(field)) {
        add(field, `'${field}' is required for '${entry.feature}', a ${type} feature`);
      }
    }
    if (entry.condition) {
      try {
        compileCondition(entry.condition);
      } catch (err) {
        if (!(err instanceof ConditionSyntaxError)) throw err;
        add('condition', err.message, 'invalid_condition');
      }
    }
    if (problems.length === before) stored.push(normalise(entry, type));
  }
  return stored;
}

async function checkTrial(
  t: TxCtx,
  planKey: string,
  trial: TrialInputT | null,
  problems: Problem[],
): Promise<StoredTrial | null> {
  if (!trial) return null;
  const add = (message: string) =>
    problems.push({ path: 'trial.downgrade_to', message, code: 'invalid_trial' });
  const target = trial.downgrade_to;
  if (trial.on_end !== 'downgrade') {
    if (target !== undefined) add(`downgrade_to applies only when on_end is 'downgrade'`);
  } else if (target === undefined) {
    add(`required when on_end is 'downgrade'`);
  } else if (target === planKey) {
    add('a trial must downgrade to another plan');
  } else {
    const plan = await t.tx
      .selectFrom('plans')
      .select(['addon', 'archived_at'])
      .where('environment', '=', t.environment)
      .where('key', '=', target)
      .executeTakeFirst();
    if (!plan) add(`no plan '${target}' exists in this environment`);
    else if (plan.addon) add(`'${target}' is an add-on; a trial downgrades to a base plan`);
    else if (plan.archived_at) add(`plan '${target}' is archived`);
  }
  return { days: trial.days, on_end: trial.on_end, downgrade_to: target ?? null };
}

function normaliseStripe(stripe: StripeInputT | null): StoredStripe | null {
  if (!stripe) return null;
  return {
    price_ids: [...new Set(stripe.price_ids ?? [])],
    lookup_keys: [...new Set(stripe.lookup_keys ?? [])],
  };
}

export async function validatePlanContent(
  t: TxCtx,
  planKey: string,
  content: PlanContentInput,
): Promise<StoredPlanContent> {
  const problems: Problem[] = [];
  const entitlements = await checkEntitlements(t, content.entitlements, problems);
  const trial = await checkTrial(t, planKey, content.trial, problems);
  const first = problems[0];
  if (first) {
    const detail =
      problems.length === 1 ? `${first.path}: ${first.message}` : `${problems.length} problems; see errors`;
    throw new Unprocessable(
      first.code,
      `The plan cannot be saved: ${detail}`,
      problems.map(({ path, message }) => ({ path, message })),
    );
  }
  return { entitlements, trial, stripe: normaliseStripe(content.stripe) };
}
