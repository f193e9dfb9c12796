import type { CreatedAt, Json, NullableJson, NullableTimestamp, Timestamp } from '../../platform/db-types.ts';

export interface FeaturesTable {
  environment: string;
  key: string;
  id: string;
  name: string;
  type: string;
  unit: string | null;
  description: string | null;
  aggregation: string;
  /** `{event_name}` of the Stripe meter its usage is reported to, or null. */
  stripe_meter: NullableJson<{ event_name: string }>;
  archived_at: NullableTimestamp;
  created_at: CreatedAt;
  updated_at: Timestamp;
}

export interface PlansTable {
  environment: string;
  key: string;
  id: string;
  name: string;
  description: string | null;
  addon: boolean;
  latest_version: number;
  archived_at: NullableTimestamp;
  created_at: CreatedAt;
  updated_at: Timestamp;
}

export interface PlanVersionsTable {
  environment: string;
  plan_key: string;
  version: number;
  /** Stored in API shape (snake_case), validated against the catalog when written. */
  entitlements: Json<unknown[]>;
  trial: NullableJson<unknown>;
  stripe: NullableJson<unknown>;
  created_at: CreatedAt;
}

export interface CatalogTables {
  features: FeaturesTable;
  plans: PlansTable;
  plan_versions: PlanVersionsTable;
}
