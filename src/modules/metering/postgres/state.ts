/** Reads and writes of the Postgres store's counters, always under the customer's advisory lock. */
import { sql } from 'kysely';
import type { Db, Tx } from '../../../platform/db.ts';
import { type CounterState, EMPTY_COUNTER, type EventPlan, type GrantUsage } from '../consume.ts';
import type { StoredPeriod } from '../store.ts';

export interface CounterRef {
  environment: string;
  customerId: string;
  feature: string;
  period: StoredPeriod;
}

/** Serialises every usage change of one customer (STYLE: locks in the transaction, not in Redis). */
export async function lockCustomer(tx: Tx, environment: string, customerId: string): Promise<void> {
  await sql`SELECT pg_advisory_xact_lock(hashtextextended(${`usage:${environment}:${customerId}`}, 0))`.execute(
    tx,
  );
}

export async function loadCounter(db: Db | Tx, ref: CounterRef, now: Date): Promise<CounterState> {
  const [counter, held] = await Promise.all([
    db
      .selectFrom('usage_counters')
      .select(['used', 'overage', 'credit_used'])
      .where('environment', '=', ref.environment)
      .where('customer_id', '=', ref.customerId)
      .where('feature', '=', ref.feature)
      .where('period_start', '=', ref.period.start)
      .executeTakeFirst(),
    db
      .selectFrom('reservations')
      .select(sql<number>`coalesce(sum(amount), 0)`.as('held'))
      .where('environment', '=', ref.environment)
      .where('customer_id', '=', ref.customerId)
      .where('feature', '=', ref.feature)
      .where('period_start', '=', ref.period.start)
      .where('status', '=', 'held')
      .where('expires_at', '>', now)
      .executeTakeFirstOrThrow(),
  ]);
  if (!counter) return { ...EMPTY_COUNTER, held: Number(held.held) };
  return {
    used: counter.used,
    held: Number(held.held),
    overage: counter.overage,
    creditUsed: counter.credit_used,
  };
}

export async function loadGrantUsage(
  db: Db | Tx,
  environment: string,
  customerId: string,
  feature: string,
): Promise<GrantUsage> {
  const rows = await db
    .selectFrom('usage_credit')
    .select(['grant_id', 'used'])
    .where('environment', '=', environment)
    .where('customer_id', '=', customerId)
    .where('feature', '=', feature)
    .execute();
  return Object.fromEntries(rows.map((r) => [r.grant_id, r.used]));
}

/** Adds an accepted event's effect to the counter and the grants it drew from. */
export async function applyPlan(tx: Tx, ref: CounterRef, add: number, plan: EventPlan): Promise<void> {
  await tx
    .insertInto('usage_counters')
    .values({
      environment: ref.environment,
      customer_id: ref.customerId,
      feature: ref.feature,
      period_start: ref.period.start,
      period_end: ref.period.end,
      used: add,
      overage: plan.overage,
      credit_used: plan.credit,
    })
    .onConflict((oc) =>
      oc.columns(['environment', 'customer_id', 'feature', 'period_start']).doUpdateSet((eb) => ({
        used: eb('usage_counters.used', '+', eb.ref('excluded.used')),
        overage: eb('usage_counters.overage', '+', eb.ref('excluded.overage')),
        credit_used: eb('usage_counters.credit_used', '+', eb.ref('excluded.credit_used')),
      })),
    )
    .execute();
  for (const [grantId, amount] of plan.draws) {
    await tx
      .insertInto('usage_credit')
      .values({
        environment: ref.environment,
        customer_id: ref.customerId,
        feature: ref.feature,
        grant_id: grantId,
        used: amount,
      })
      .onConflict((oc) =>
        oc
          .columns(['environment', 'customer_id', 'feature', 'grant_id'])
          .doUpdateSet((eb) => ({ used: eb('usage_credit.used', '+', eb.ref('excluded.used')) })),
      )
      .execute();
  }
}
