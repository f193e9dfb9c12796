import type { FeatureSodRule, SodAction } from '../../domain/sod.ts';
import { type Ctx, reader, requireScope, withTransaction } from '../../platform/context.ts';
import type { Executor } from '../../platform/db.ts';
import { type FieldError, NotFound, Unprocessable } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { loadFeatures } from '../catalog/repo.ts';
import type { CreateSodRuleInput, SodDuty, SodRuleResource } from './sod-schema.ts';

interface SodRuleRow {
  id: string;
  name: string;
  features: string[] | null;
  action: string | null;
  duty: string | null;
  min_amount: number | null;
  created_at: Date;
  deleted_at: Date | null;
}

function toResource(row: SodRuleRow): SodRuleResource {
  return {
    id: row.id,
    name: row.name,
    features: row.features,
    action: row.action as SodAction | null,
    duty: row.duty as SodDuty | null,
    min_amount: row.min_amount,
    created_at: row.created_at.toISOString(),
    deleted_at: row.deleted_at?.toISOString() ?? null,
  };
}

const COLUMNS = [
  'id',
  'name',
  'features',
  'action',
  'duty',
  'min_amount',
  'created_at',
  'deleted_at',
] as const;

/** A rule of the second form: an incompatible duty. */
export interface DutySodRule {
  id: string;
  name: string;
  duty: SodDuty;
  minAmount: number | null;
}

/** The environment's live feature rules (features held together), oldest first. */
export async function listSodRules(db: Executor, environment: string): Promise<FeatureSodRule[]> {
  const rows = await db
    .selectFrom('sod_rules')
    .select(['id', 'name', 'features', 'action'])
    .where('environment', '=', environment)
    .where('deleted_at', 'is', null)
    .where('features', 'is not', null)
    .orderBy('seq')
    .execute();
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    features: r.features ?? [],
    action: r.action as SodAction,
  }));
}

/** The environment's live duty rules, oldest first. */
export async function listDutyRules(db: Executor, environment: string): Promise<DutySodRule[]> {
  const rows = await db
    .selectFrom('sod_rules')
    .select(['id', 'name', 'duty', 'min_amount'])
    .where('environment', '=', environment)
    .where('deleted_at', 'is', null)
    .where('duty', 'is not', null)
    .orderBy('seq')
    .execute();
  return rows.map((r) => ({ id: r.id, name: r.name, duty: r.duty as SodDuty, minAmount: r.min_amount }));
}

async function validateFeatures(ctx: Ctx, features: string[]): Promise<void> {
  const errors: FieldError[] = [];
  if (new Set(features).size < 2)
    errors.push({ path: 'features', message: 'name at least two distinct features' });
  const known = await loadFeatures(reader(ctx), ctx.environment);
  features.forEach((key, i) => {
    if (!known.has(key)) errors.push({ path: `features.${i}`, message: `unknown feature '${key}'` });
  });
  if (errors.length > 0)
    throw new Unprocessable('invalid_sod_rule', 'The rule names features it cannot', errors);
}

export async function createSodRule(ctx: Ctx, input: CreateSodRuleInput): Promise<SodRuleResource> {
  requireScope(ctx, 'admin');
  if (input.features !== undefined) await validateFeatures(ctx, input.features);
  return withTransaction(ctx, async (t) => {
    const row = await t.tx
      .insertInto('sod_rules')
      .values({
        id: newId('sod', t.now.getTime()),
        environment: ctx.environment,
        name: input.name,
        features: input.features ? JSON.stringify(input.features) : null,
        action: input.action ?? null,
        duty: input.duty ?? null,
        min_amount: input.min_amount ?? null,
        created_at: t.now,
      })
      .returning(COLUMNS)
      .executeTakeFirstOrThrow();
    const rule = toResource(row);
    t.audit({ action: 'sod_rule.created', target: { type: 'sod_rule', id: row.id }, after: rule });
    return rule;
  });
}

/** Live rules, oldest first. */
export async function listSodRuleResources(ctx: Ctx): Promise<SodRuleResource[]> {
  requireScope(ctx, 'admin');
  const rows = await reader(ctx)
    .selectFrom('sod_rules')
    .select(COLUMNS)
    .where('environment', '=', ctx.environment)
    .where('deleted_at', 'is', null)
    .orderBy('seq')
    .execute();
  return rows.map(toResource);
}

/** One rule, deleted ones included (flags and audit events keep naming them). */
export async function getSodRule(ctx: Ctx, id: string): Promise<SodRuleResource> {
  requireScope(ctx, 'admin');
  const row = await reader(ctx)
    .selectFrom('sod_rules')
    .select(COLUMNS)
    .where('environment', '=', ctx.environment)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) throw new NotFound('sod_rule', id);
  return toResource(row);
}

/** Deletes a rule from now on; the row stays with `deleted_at`. Deleting it again answers it unchanged. */
export async function deleteSodRule(ctx: Ctx, id: string): Promise<SodRuleResource> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await t.tx
      .selectFrom('sod_rules')
      .select(COLUMNS)
      .where('environment', '=', ctx.environment)
      .where('id', '=', id)
      .forUpdate()
      .executeTakeFirst();
    if (!before) throw new NotFound('sod_rule', id);
    if (before.deleted_at) return toResource(before);
    const after = await t.tx
      .updateTable('sod_rules')
      .set({ deleted_at: t.now })
      .where('id', '=', id)
      .returning(COLUMNS)
      .executeTakeFirstOrThrow();
    const rule = toResource(after);
    t.audit({
      action: 'sod_rule.deleted',
      target: { type: 'sod_rule', id },
      before: toResource(before),
      after: rule,
    });
    return rule;
  });
}
