import type { Selectable } from 'kysely';
import type { OverrideEffect } from '../../domain/types.ts';
import type { GrantResource, OverrideResource } from './schema.ts';
import type { CreditGrantsTable, OverridesTable } from './tables.ts';

type Actor = { type: string; id: string | null; name: string | null };

export function toOverrideResource(row: Selectable<OverridesTable>, now: Date): OverrideResource {
  const effect = row.effect as unknown as OverrideEffect;
  const status =
    row.ended_at && row.ended_at <= now
      ? 'ended'
      : row.expires_at && row.expires_at <= now
        ? 'expired'
        : row.starts_at > now
          ? 'scheduled'
          : 'active';
  return {
    id: row.id,
    customer_id: row.customer_id,
    feature: row.feature,
    ...(effect.type === 'boolean' ? { enabled: effect.enabled } : {}),
    ...(effect.type === 'config' ? { value: effect.value } : {}),
    ...(effect.type === 'metered' ? { limit: effect.limit } : {}),
    condition: row.condition,
    starts_at: row.starts_at.toISOString(),
    expires_at: row.expires_at?.toISOString() ?? null,
    ended_at: row.ended_at?.toISOString() ?? null,
    status,
    reason: row.reason,
    created_by: row.created_by as unknown as Actor,
    created_at: row.created_at.toISOString(),
  };
}

export function toGrantResource(row: Selectable<CreditGrantsTable>, now: Date): GrantResource {
  const status = row.voided_at
    ? 'voided'
    : row.expires_at && row.expires_at <= now
      ? 'expired'
      : row.effective_at > now
        ? 'pending'
        : 'active';
  return {
    id: row.id,
    customer_id: row.customer_id,
    feature: row.feature,
    amount: row.amount,
    priority: row.priority,
    effective_at: row.effective_at.toISOString(),
    expires_at: row.expires_at?.toISOString() ?? null,
    voided_at: row.voided_at?.toISOString() ?? null,
    status,
    reason: row.reason,
    created_by: row.created_by as unknown as Actor,
    created_at: row.created_at.toISOString(),
  };
}

/** Locks the customer row so concurrent changes to what it holds serialise. */
