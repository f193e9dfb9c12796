import type { Selectable } from 'kysely';
import type { CreditGrant, Override, OverrideEffect } from '../../domain/types.ts';
import type { Executor } from '../../platform/db.ts';
import type { CreditGrantsTable, OverridesTable } from './tables.ts';

export function toOverride(row: Selectable<OverridesTable>): Override {
  return {
    id: row.id,
    customerId: row.customer_id,
    feature: row.feature,
    effect: row.effect as unknown as OverrideEffect,
    condition: row.condition,
    startsAt: row.starts_at,
    expiresAt: row.expires_at,
    endedAt: row.ended_at,
    reason: row.reason,
  };
}

export function toGrant(row: Selectable<CreditGrantsTable>): CreditGrant {
  return {
    id: row.id,
    customerId: row.customer_id,
    feature: row.feature,
    amount: row.amount,
    priority: row.priority,
    effectiveAt: row.effective_at,
    expiresAt: row.expires_at,
    createdAt: row.created_at,
    voidedAt: row.voided_at,
    reason: row.reason,
  };
}

/** Overrides that apply now or later; ended and expired ones are history and stay out of snapshots. */
export async function loadLiveOverrides(
  db: Executor,
  environment: string,
  customerId: string,
  now: Date,
): Promise<Override[]> {
  const rows = await db
    .selectFrom('overrides')
    .selectAll()
    .where('environment', '=', environment)
    .where('customer_id', '=', customerId)
    .where((eb) => eb.or([eb('ended_at', 'is', null), eb('ended_at', '>', now)]))
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .orderBy('created_at')
    .execute();
  return rows.map(toOverride);
}

export async function loadLiveGrants(
  db: Executor,
  environment: string,
  customerId: string,
  now: Date,
): Promise<CreditGrant[]> {
  const rows = await db
    .selectFrom('credit_grants')
    .selectAll()
    .where('environment', '=', environment)
    .where('customer_id', '=', customerId)
    .where('voided_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .orderBy('created_at')
    .execute();
  return rows.map(toGrant);
}
