import { describeEntitlements } from '../../domain/decide.ts';
import { resolveEntitlements } from '../../domain/resolve.ts';
import { type FeatureSodRule, rulesBroken } from '../../domain/sod.ts';
import type { Executor } from '../../platform/db.ts';
import { loadCustomerSnapshot } from '../entitlements/snapshot.ts';
import { listSodRules } from './sod-rules.ts';

const NO_USAGE = () => ({ used: 0 });

/**
 * The features a customer holds at `now`: those its resolved entitlements give access to (plan,
 * add-ons, overrides, grants), by the same resolution decisions use. Usage does not count: a
 * metered feature with a limit (or credit) is held even when used up. Conditions are evaluated
 * with the customer's attributes and an empty context. Read through `db`, so inside a
 * transaction it sees that transaction's own writes.
 */
export async function heldFeatures(
  db: Executor,
  environment: string,
  customerId: string,
  now: Date,
): Promise<Set<string>> {
  const snapshot = await loadCustomerSnapshot(db, environment, customerId, now);
  const resolved = resolveEntitlements(snapshot, now, NO_USAGE);
  const held = new Set<string>();
  for (const e of describeEntitlements(resolved)) if (e.hasAccess) held.add(e.feature);
  return held;
}

/** The environment's feature rules that what the customer holds now breaks (the `sod` flag's question). */
export async function sodRulesBrokenBy(
  db: Executor,
  environment: string,
  customerId: string,
  now: Date,
): Promise<FeatureSodRule[]> {
  const rules = await listSodRules(db, environment);
  if (rules.length === 0) return [];
  return rulesBroken(rules, await heldFeatures(db, environment, customerId, now));
}
