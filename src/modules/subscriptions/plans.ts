/**
 * What the subscriptions slice needs from the catalog: the latest version of the plans a
 * subscription may move to by itself (for the state machine's PlanLookup), and the plan version a
 * command names, checked with 422s that name the field.
 */
import type { PlanLookup } from '../../domain/subscription-state.ts';
import type { PlanVersion, Subscription } from '../../domain/types.ts';
import type { Executor } from '../../platform/db.ts';
import { Unprocessable } from '../../platform/errors.ts';
import { findPlan, loadPlanVersion } from '../catalog/repo.ts';

/** Plans whose latest version a time-driven transition of `sub` may need. */
function latestNeededBy(sub: Subscription): string[] {
  const keys: string[] = [];
  if (sub.scheduledChange && sub.scheduledChange.planVersion === null) keys.push(sub.scheduledChange.planKey);
  if (sub.trialDowngradeTo !== null) keys.push(sub.trialDowngradeTo);
  return keys;
}

/** A PlanLookup for these subscriptions, read in one query; plans that no longer exist answer null. */
export async function planLookupFor(
  db: Executor,
  environment: string,
  subscriptions: Subscription[],
): Promise<PlanLookup> {
  const keys = [...new Set(subscriptions.flatMap(latestNeededBy))];
  const latest = new Map<string, number>();
  if (keys.length > 0) {
    const rows = await db
      .selectFrom('plans')
      .select(['key', 'latest_version'])
      .where('environment', '=', environment)
      .where('key', 'in', keys)
      .execute();
    for (const row of rows) latest.set(row.key, row.latest_version);
  }
  return { latestVersion: (planKey) => latest.get(planKey) ?? null };
}

export interface TargetPlan {
  plan: PlanVersion;
  archived: boolean;
}

/**
 * The plan version a request names (its latest when `version` is omitted). Unknown plans and
 * versions are 422s naming `plan` / `plan_version`; archived plans too, unless `allowArchived`.
 */
export async function resolveTargetPlan(
  db: Executor,
  environment: string,
  key: string,
  version: number | undefined,
  fields: { plan: string; version: string } = { plan: 'plan', version: 'plan_version' },
  allowArchived = false,
): Promise<TargetPlan> {
  const row = await findPlan(db, environment, key);
  if (!row) {
    throw new Unprocessable('unknown_plan', `No plan '${key}' in this environment`, [
      { path: fields.plan, message: 'unknown plan' },
    ]);
  }
  if (row.archived_at && !allowArchived) {
    throw new Unprocessable('plan_archived', `Plan '${key}' is archived and takes no new subscriptions`, [
      { path: fields.plan, message: 'archived plan' },
    ]);
  }
  const wanted = version ?? row.latest_version;
  const plan = await loadPlanVersion(db, environment, key, wanted);
  if (!plan) {
    throw new Unprocessable('unknown_plan_version', `Plan '${key}' has no version ${wanted}`, [
      { path: fields.version, message: `no version ${wanted} (latest is ${row.latest_version})` },
    ]);
  }
  return { plan, archived: row.archived_at !== null };
}
