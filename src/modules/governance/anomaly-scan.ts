/**
 * The anomaly scan: reads each customer's exceptions, subscriptions and plan, and the usage ledger,
 * and raises a flag for each finding (rules in src/domain/anomalies.ts). Each customer's flags are
 * raised in one transaction; raising is idempotent, so the scan can run at any time, from any
 * number of processes. The scheduler scans each environment once a day (SCAN_INTERVAL_MS);
 * `POST /v1/flags/scan` scans the caller's environment now.
 */
import { sql } from 'kysely';
import {
  type Orphan,
  orphanOf,
  overlapOf,
  SPIKE_BASELINE_DAYS,
  spikesOf,
  utcDay,
} from '../../domain/anomalies.ts';
import { holdingsOf, planLookupOf } from '../../domain/holdings.ts';
import { heldOfRule, rulesBroken } from '../../domain/sod.ts';
import { stateAt } from '../../domain/subscription-state.ts';
import type { PlanEntitlement } from '../../domain/types.ts';
import {
  type Actor,
  type AppDeps,
  type Ctx,
  reader,
  requireScope,
  systemContext,
  withTransaction,
} from '../../platform/context.ts';
import type { Executor } from '../../platform/db.ts';
import { loadFeatures } from '../catalog/repo.ts';
import { loadCustomerSnapshot } from '../entitlements/snapshot.ts';
import { type Finding, raiseFlag } from './anomaly-flags.ts';
import { type Exception, exceptionsInScope } from './review-items.ts';
import type { FlagResource } from './review-schema.ts';
import { heldFeatures } from './sod-holdings.ts';
import { listSodRules } from './sod-rules.ts';

export const SCAN_INTERVAL_MS = 86_400_000;
const RETRY_AFTER_FAILURE_MS = 3_600_000;
const DAY_MS = 86_400_000;

/** Overlap and orphan findings for one customer's live exceptions. */
async function exceptionFindings(
  db: Executor,
  environment: string,
  customerId: string,
  exceptions: Exception[],
  now: Date,
): Promise<Finding[]> {
  const snapshot = await loadCustomerSnapshot(db, environment, customerId, now);
  if (!snapshot.exists) return [];
  const holdings = holdingsOf(snapshot, now);
  const granted = new Map<string, { entitlement: PlanEntitlement; source: string }>();
  for (const h of [...(holdings.plan ? [holdings.plan] : []), ...holdings.addons]) {
    for (const e of h.plan.entitlements) {
      if (e.condition !== null || granted.has(e.feature)) continue;
      const entitlement =
        e.type === 'metered' && e.perSeat && e.limit !== null ? { ...e, limit: e.limit * h.quantity } : e;
      granted.set(e.feature, {
        entitlement,
        source: `${h.source.kind}:${h.plan.planKey}@v${h.plan.version}`,
      });
    }
  }
  const plans = planLookupOf(snapshot.planVersions);
  const subscriptions = snapshot.subscriptions.map((s) => stateAt(s, now, plans));
  const byId = new Map(exceptions.map((e) => [e.id, e]));
  const findings: Finding[] = [];
  const orphan = (exception: Exception, found: Orphan | null) => {
    if (found)
      findings.push({
        customerId,
        kind: 'orphan',
        subject: exception.id,
        detail: { subject: { kind: exception.kind, id: exception.id, feature: exception.feature }, ...found },
        exception,
      });
  };
  for (const o of snapshot.overrides) {
    const exception = byId.get(o.id);
    if (!exception) continue;
    orphan(exception, orphanOf(subscriptions, o.expiresAt, now));
    const plan = granted.get(o.feature);
    if (o.condition !== null || o.startsAt > now || !plan) continue;
    const overlap = overlapOf(o.effect, plan.entitlement);
    if (overlap)
      findings.push({
        customerId,
        kind: 'overlap',
        subject: o.id,
        detail: {
          subject: { kind: 'override', id: o.id, feature: o.feature },
          relation: overlap.relation,
          override: o.effect,
          plan: { source: plan.source, entitlement: plan.entitlement },
        },
        exception,
      });
  }
  for (const g of snapshot.grants) {
    const exception = byId.get(g.id);
    if (exception) orphan(exception, orphanOf(subscriptions, g.expiresAt, now));
  }
  return findings;
}

/** Spike findings for every customer and summed metered feature of the environment: yesterday and today so far. */
async function spikeFindings(db: Executor, environment: string, now: Date): Promise<Finding[]> {
  const features = await loadFeatures(db, environment);
  const summed = [...features.values()].filter((f) => f.type === 'metered' && f.aggregation === 'sum');
  if (summed.length === 0) return [];
  const today = utcDay(now);
  const yesterday = utcDay(new Date(now.getTime() - DAY_MS));
  const from = new Date(Date.parse(`${yesterday}T00:00:00.000Z`) - SPIKE_BASELINE_DAYS * DAY_MS);
  const rows = await db
    .selectFrom('usage_events')
    .select([
      'customer_id',
      'feature',
      sql<string>`to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')`.as('day'),
      sql<string>`sum(value)`.as('used'),
    ])
    .where('environment', '=', environment)
    .where(
      'feature',
      'in',
      summed.map((f) => f.key),
    )
    .where('occurred_at', '>=', from)
    .where('occurred_at', '<=', now)
    .groupBy(['customer_id', 'feature', 'day'])
    .execute();
  const series = new Map<string, { customerId: string; feature: string; days: Map<string, number> }>();
  for (const r of rows) {
    const key = `${r.customer_id}\u0000${r.feature}`;
    const s = series.get(key) ?? { customerId: r.customer_id, feature: r.feature, days: new Map() };
    series.set(key, s);
    s.days.set(r.day, Number(r.used));
  }
  const findings: Finding[] = [];
  for (const s of series.values()) {
    for (const spike of spikesOf(s.days, [yesterday, today])) {
      findings.push({
        customerId: s.customerId,
        kind: 'spike',
        subject: `${s.feature}@${spike.day}`,
        detail: { feature: s.feature, ...spike, partial_day: spike.day === today },
      });
    }
  }
  return findings;
}

/**
 * SoD findings: customers holding two or more features of one feature rule. Changes that would
 * break a `deny` rule are refused when made, so these are holdings that predate the rule (or came
 * through a rule that only requires approval). Reads every live customer's holdings, and only when
 * the environment has feature rules.
 */
async function sodFindings(db: Executor, environment: string, now: Date): Promise<Finding[]> {
  const rules = await listSodRules(db, environment);
  if (rules.length === 0) return [];
  const customers = await db
    .selectFrom('customers')
    .select('customer_id')
    .where('environment', '=', environment)
    .where('deleted_at', 'is', null)
    .orderBy('customer_id')
    .execute();
  const findings: Finding[] = [];
  for (const { customer_id } of customers) {
    const held = await heldFeatures(db, environment, customer_id, now);
    for (const rule of rulesBroken(rules, held)) {
      findings.push({
        customerId: customer_id,
        kind: 'sod',
        subject: rule.id,
        detail: {
          rule: { id: rule.id, name: rule.name, action: rule.action, features: rule.features },
          held: heldOfRule(rule, held),
        },
      });
    }
  }
  return findings;
}

/** Scans one environment as `ctx` at the clock's now; returns the flags raised. */
async function scan(ctx: Ctx): Promise<FlagResource[]> {
  const db = reader(ctx);
  const now = ctx.deps.clock.now();
  const exceptions = await exceptionsInScope(db, ctx.environment, {}, now);
  const byCustomer = new Map<string, Exception[]>();
  for (const e of exceptions) byCustomer.set(e.customerId, [...(byCustomer.get(e.customerId) ?? []), e]);
  const findings = new Map<string, Finding[]>();
  const add = (f: Finding) => findings.set(f.customerId, [...(findings.get(f.customerId) ?? []), f]);
  for (const [customerId, held] of byCustomer)
    for (const f of await exceptionFindings(db, ctx.environment, customerId, held, now)) add(f);
  for (const f of await spikeFindings(db, ctx.environment, now)) add(f);
  for (const f of await sodFindings(db, ctx.environment, now)) add(f);
  const raised: FlagResource[] = [];
  for (const list of findings.values()) {
    await withTransaction(ctx, async (t) => {
      for (const f of list) {
        const flag = await raiseFlag(t, f);
        if (flag) raised.push(flag);
      }
    });
  }
  return raised;
}

/** `POST /v1/flags/scan`: scans the caller's environment now. */
export async function scanForAnomalies(ctx: Ctx): Promise<FlagResource[]> {
  requireScope(ctx, 'admin');
  return scan(ctx);
}

/**
 * The scheduler's step: scans each environment whose last scan is SCAN_INTERVAL_MS old (claimed
 * by moving `anomaly_scans.scanned_at` first, so two workers never scan one environment at once).
 * Returns how many flags were raised.
 */
export async function runDueAnomalyScans(deps: AppDeps, actor: Actor): Promise<number> {
  const now = deps.clock.now();
  const cutoff = new Date(now.getTime() - SCAN_INTERVAL_MS);
  const environments = await deps.db.selectFrom('environments').select('id').execute();
  let raised = 0;
  for (const { id } of environments) {
    const claimed = await deps.db
      .insertInto('anomaly_scans')
      .values({ environment: id, scanned_at: now })
      .onConflict((oc) =>
        oc
          .column('environment')
          .doUpdateSet({ scanned_at: now })
          .where('anomaly_scans.scanned_at', '<=', cutoff),
      )
      .returning('environment')
      .executeTakeFirst();
    if (!claimed) continue;
    try {
      raised += (await scan(systemContext(deps, id, actor))).length;
    } catch (err) {
      // Try this environment again in an hour rather than tomorrow.
      await deps.db
        .updateTable('anomaly_scans')
        .set({ scanned_at: new Date(cutoff.getTime() + RETRY_AFTER_FAILURE_MS) })
        .where('environment', '=', id)
        .execute();
      deps.logger.error({ err, environment: id }, 'anomaly scan failed');
    }
  }
  return raised;
}
