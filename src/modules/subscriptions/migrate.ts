/**
 * Plan version migration: subscriptions stay on the version they started on until moved. A dry run
 * lists, per live subscription on `from_version`, what its customer gains and loses; a real run
 * moves them to `to_version` in batches, one transaction per batch, each subscription audited and
 * its customer's version bumped. A run that stops half way can simply be repeated: subscriptions
 * already moved are no longer on `from_version`.
 */
import { sql } from 'kysely';
import { stateAt } from '../../domain/subscription-state.ts';
import type { PlanVersion, Subscription } from '../../domain/types.ts';
import { type Ctx, reader, requireScope, withTransaction } from '../../platform/context.ts';
import type { Executor } from '../../platform/db.ts';
import { NotFound, Unprocessable } from '../../platform/errors.ts';
import { findPlan, loadPlanVersion } from '../catalog/repo.ts';
import { lockCustomerRow } from '../customers/repo.ts';
import { catchUpFirst, catchUpRow } from './catch-up.ts';
import { recordSubscriptionChange } from './changes.ts';
import { type PlanImpact, planImpact } from './plan-diff.ts';
import { planLookupFor } from './plans.ts';
import { lockSubscription, saveSubscription, toSubscription } from './repo.ts';
import { isLive } from './resource.ts';

export interface MigrateInput {
  from_version: number;
  to_version: number;
  dry_run: boolean;
}

export interface AffectedSubscription extends PlanImpact {
  subscription_id: string;
  customer_id: string;
  status: Subscription['status'];
  quantity: number;
}

export interface MigrationResult {
  plan: string;
  from_version: number;
  to_version: number;
  dry_run: boolean;
  /** Live subscriptions on from_version now. */
  affected: number;
  /** Subscriptions moved by this run (0 for a dry run). */
  migrated: number;
  /** What the plan change itself adds and removes, for one seat. */
  changes: PlanImpact;
  subscriptions: AffectedSubscription[];
  /** True when `subscriptions` lists only the first LISTED_MAX. */
  truncated: boolean;
}

const BATCH_SIZE = 100;
const LISTED_MAX = 1000;

async function versionOrFail(db: Executor, env: string, key: string, version: number, path: string) {
  const plan = await loadPlanVersion(db, env, key, version);
  if (!plan)
    throw new Unprocessable('unknown_plan_version', `Plan '${key}' has no version ${version}`, [
      { path, message: `no version ${version}` },
    ]);
  return plan;
}

interface Listed {
  stored: Subscription;
  /** As it is now. */
  state: Subscription;
}

/** Live subscriptions on planKey@version now (the stored row may still name another version). */
async function onVersion(
  db: Executor,
  env: string,
  planKey: string,
  version: number,
  now: Date,
): Promise<Listed[]> {
  const rows = await db
    .selectFrom('subscriptions')
    .selectAll()
    .where('environment', '=', env)
    .where('status', 'not in', ['canceled', 'expired'])
    .where((eb) =>
      eb.or([
        eb('plan_key', '=', planKey),
        eb('trial_downgrade_to', '=', planKey),
        eb(sql<string>`scheduled_change->>'plan_key'`, '=', planKey),
      ]),
    )
    .orderBy('id')
    .execute();
  const stored = rows.map(toSubscription);
  const plans = await planLookupFor(db, env, stored);
  return stored
    .map((sub) => ({ stored: sub, state: stateAt(sub, now, plans) }))
    .filter(({ state }) => isLive(state) && state.planKey === planKey && state.planVersion === version);
}

function affectedOf(sub: Subscription, from: PlanVersion, to: PlanVersion): AffectedSubscription {
  return {
    subscription_id: sub.id,
    customer_id: sub.customerId,
    status: sub.status,
    quantity: sub.quantity,
    ...planImpact(from, to, sub.quantity),
  };
}

export async function migratePlanVersion(
  ctx: Ctx,
  planKey: string,
  input: MigrateInput,
): Promise<MigrationResult> {
  requireScope(ctx, 'admin');
  const db = reader(ctx);
  if (!(await findPlan(db, ctx.environment, planKey))) throw new NotFound('plan', planKey);
  const from = await versionOrFail(db, ctx.environment, planKey, input.from_version, 'from_version');
  const to = await versionOrFail(db, ctx.environment, planKey, input.to_version, 'to_version');
  if (from.version === to.version) {
    throw new Unprocessable('same_version', 'from_version and to_version are the same', [
      { path: 'to_version', message: 'must differ from from_version' },
    ]);
  }
  const now = ctx.deps.clock.now();
  const affected = await onVersion(db, ctx.environment, planKey, from.version, now);
  let migrated = 0;
  if (!input.dry_run) {
    for (let i = 0; i < affected.length; i += BATCH_SIZE) {
      const batch = affected.slice(i, i + BATCH_SIZE).map((listed) => listed.stored);
      migrated += await migrateBatch(ctx, batch, from, to);
    }
  }
  return {
    plan: planKey,
    from_version: from.version,
    to_version: to.version,
    dry_run: input.dry_run,
    affected: affected.length,
    migrated,
    changes: planImpact(from, to),
    subscriptions: affected.slice(0, LISTED_MAX).map(({ state }) => affectedOf(state, from, to)),
    truncated: affected.length > LISTED_MAX,
  };
}

/** One transaction: customers locked in id order, then their subscriptions (the order every path uses). */
async function migrateBatch(
  ctx: Ctx,
  batch: Subscription[],
  from: PlanVersion,
  to: PlanVersion,
): Promise<number> {
  await catchUpFirst(ctx, batch);
  return withTransaction(ctx, async (t) => {
    for (const customerId of [...new Set(batch.map((s) => s.customerId))].sort()) {
      await lockCustomerRow(t.tx, t.environment, customerId);
    }
    let moved = 0;
    for (const sub of batch) {
      const row = await lockSubscription(t.tx, t.environment, sub.id);
      if (!row) continue;
      const { state } = await catchUpRow(t, row);
      // Changed, ended or already moved since it was listed: nothing to do.
      if (!isLive(state) || state.planKey !== from.planKey || state.planVersion !== from.version) continue;
      const next: Subscription = { ...state, planVersion: to.version };
      await saveSubscription(t.tx, t.environment, next, t.now);
      recordSubscriptionChange(t, 'subscription.migrated', state, next, {
        from_version: from.version,
        to_version: to.version,
      });
      moved += 1;
    }
    return moved;
  });
}
