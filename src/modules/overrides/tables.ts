import type { CreatedAt, Json, NullableTimestamp, Timestamp } from '../../platform/db-types.ts';

export interface OverridesTable {
  id: string;
  environment: string;
  customer_id: string;
  feature: string;
  /** {type: 'boolean', enabled} | {type: 'config', value} | {type: 'metered', limit} */
  effect: Json<Record<string, unknown>>;
  condition: string | null;
  starts_at: Timestamp;
  expires_at: NullableTimestamp;
  ended_at: NullableTimestamp;
  reason: string;
  created_by: Json<Record<string, unknown>>;
  created_at: CreatedAt;
}

export interface CreditGrantsTable {
  id: string;
  environment: string;
  customer_id: string;
  feature: string;
  amount: number;
  priority: number;
  effective_at: Timestamp;
  expires_at: NullableTimestamp;
  voided_at: NullableTimestamp;
  reason: string;
  created_by: Json<Record<string, unknown>>;
  created_at: CreatedAt;
}

export interface OverrideTables {
  overrides: OverridesTable;
  credit_grants: CreditGrantsTable;
}
