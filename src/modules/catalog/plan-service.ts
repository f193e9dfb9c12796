/**
 * Plan verbs. A plan is a row (key, name, add-on or not) plus immutable versions numbered 1..n;
 * subscriptions pin a version, so a change to what a plan grants is always a new version.
 */
import { type Ctx, requireScope, type TxCtx, withTransaction } from '../../platform/context.ts';
import { Conflict, NotFound } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { recordCatalogChange } from './changes.ts';
import { toPlanResource, versionRow } from './plan-reads.ts';
import type {
  CreatePlanInput,
  CreatePlanVersionInput,
  PlanResource,
  StoredStripe,
  StoredTrial,
  TrialInputT,
  UpdatePlanInput,
} from './plan-schema.ts';
import { type StoredPlanContent, validatePlanContent } from './plan-validation.ts';
import type { PlanRow } from './repo.ts';

async function insertVersion(t: TxCtx, planKey: string, version: number, content: StoredPlanContent) {
  return t.tx
    .insertInto('plan_versions')
    .values({
      environment: t.environment,
      plan_key: planKey,
      version,
      entitlements: JSON.stringify(content.entitlements),
      trial: content.trial === null ? null : JSON.stringify(content.trial),
      stripe: content.stripe === null ? null : JSON.stringify(content.stripe),
      created_at: t.now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export async function createPlan(ctx: Ctx, input: CreatePlanInput): Promise<PlanResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const plan = await t.tx
      .insertInto('plans')
      .values({
        environment: ctx.environment,
        key: input.key,
        id: newId('plan', t.now.getTime()),
        name: input.name,
        description: input.description ?? null,
        addon: input.addon ?? false,
        latest_version: 1,
        created_at: t.now,
        updated_at: t.now,
      })
      .onConflict((oc) => oc.columns(['environment', 'key']).doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!plan) throw new Conflict('plan_exists', `A plan with key '${input.key}' already exists`);
    const content = await validatePlanContent(t, input.key, {
      entitlements: input.entitlements,
      trial: input.trial ?? null,
      stripe: input.stripe ?? null,
    });
    const resource = toPlanResource(plan, await insertVersion(t, input.key, 1, content));
    recordCatalogChange(t, {
      action: 'plan.created',
      target: { type: 'plan', id: plan.id, key: plan.key },
      after: resource,
      version: 1,
    });
    return resource;
  });
}

/** Locking the plan row serialises version creation, so numbers never repeat or skip. */
async function lockPlan(t: TxCtx, key: string): Promise<PlanRow> {
  const plan = await t.tx
    .selectFrom('plans')
    .selectAll()
    .where('environment', '=', t.environment)
    .where('key', '=', key)
    .forUpdate()
    .executeTakeFirst();
  if (!plan) throw new NotFound('plan', key);
  return plan;
}

function trialAsInput(trial: StoredTrial | null): TrialInputT | null {
  if (!trial) return null;
  const { downgrade_to, ...rest } = trial;
  return downgrade_to === null ? rest : { ...rest, downgrade_to };
}

/** Omitted `trial` / `stripe` carry over from the previous version; null removes them. */
export async function createPlanVersion(
  ctx: Ctx,
  key: string,
  input: CreatePlanVersionInput,
): Promise<PlanResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const plan = await lockPlan(t, key);
    const previous = await versionRow(t, key, plan.latest_version);
    const content = await validatePlanContent(t, key, {
      entitlements: input.entitlements,
      trial: input.trial === undefined ? trialAsInput(previous.trial as StoredTrial | null) : input.trial,
      stripe: input.stripe === undefined ? (previous.stripe as StoredStripe | null) : input.stripe,
    });
    const next = plan.latest_version + 1;
    const created = await insertVersion(t, key, next, content);
    const updated = await t.tx
      .updateTable('plans')
      .set({ latest_version: next, updated_at: t.now })
      .where('environment', '=', t.environment)
      .where('key', '=', key)
      .returningAll()
      .executeTakeFirstOrThrow();
    const resource = toPlanResource(updated, created);
    recordCatalogChange(t, {
      action: 'plan.version_created',
      target: { type: 'plan', id: plan.id, key },
      before: toPlanResource(plan, previous),
      after: resource,
      version: next,
    });
    return resource;
  });
}

async function changePlan(
  ctx: Ctx,
  key: string,
  action: 'plan.updated' | 'plan.archived',
  changesOf: (plan: PlanRow, now: Date) => Partial<Pick<PlanRow, 'name' | 'description' | 'archived_at'>>,
): Promise<PlanResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const plan = await lockPlan(t, key);
    const latest = await versionRow(t, key, plan.latest_version);
    const changes = changesOf(plan, t.now);
    if (Object.keys(changes).length === 0) return toPlanResource(plan, latest);
    const updated = await t.tx
      .updateTable('plans')
      .set({ ...changes, updated_at: t.now })
      .where('environment', '=', t.environment)
      .where('key', '=', key)
      .returningAll()
      .executeTakeFirstOrThrow();
    const resource = toPlanResource(updated, latest);
    recordCatalogChange(t, {
      action,
      target: { type: 'plan', id: plan.id, key },
      before: toPlanResource(plan, latest),
      after: resource,
    });
    return resource;
  });
}

export function updatePlan(ctx: Ctx, key: string, input: UpdatePlanInput): Promise<PlanResource> {
  return changePlan(ctx, key, 'plan.updated', (plan) => ({
    ...(input.name !== undefined && input.name !== plan.name ? { name: input.name } : {}),
    ...(input.description !== undefined && input.description !== plan.description
      ? { description: input.description }
      : {}),
  }));
}

/** One-way and idempotent: subscribers keep their versions; new subscriptions cannot start on it. */
export function archivePlan(ctx: Ctx, key: string): Promise<PlanResource> {
  return changePlan(ctx, key, 'plan.archived', (plan, now) => (plan.archived_at ? {} : { archived_at: now }));
}
