import type { ColumnType } from 'kysely';
import type { CreatedAt, Json, NullableJson, NullableTimestamp, Timestamp } from '../../platform/db-types.ts';

export interface ActorGroupsTable {
  environment: string;
  key: string;
  /** Actors (emails or ids) in the group. */
  members: Json<string[]>;
  created_at: CreatedAt;
  updated_at: Timestamp;
}

export interface ApprovalPoliciesTable {
  id: string;
  /** Creation order (bigserial, read as a string): the oldest matching policy governs. */
  seq: ColumnType<string, never, never>;
  environment: string;
  name: string;
  kinds: Json<string[]>;
  features: NullableJson<string[]>;
  auto_approve: boolean;
  stages: Json<Array<Record<string, unknown>>>;
  /** Size and customer-attribute conditions the request must meet for the policy to match. */
  conditions: NullableJson<Record<string, unknown>>;
  created_at: CreatedAt;
}

export interface AccessRequestsTable {
  id: string;
  environment: string;
  customer_id: string;
  kind: string;
  change: Json<Record<string, unknown>>;
  justification: string;
  duration_hours: number | null;
  status: string;
  stage: number;
  stage_started_at: Timestamp;
  /** When the current stage times out; null when it cannot (no timeout, or escalated already). */
  stage_deadline_at: NullableTimestamp;
  policy_id: string;
  requested_by: string;
  decisions: Json<Array<Record<string, unknown>>>;
  applied: NullableJson<Record<string, unknown>>;
  created_at: CreatedAt;
  decided_at: NullableTimestamp;
}

/** Separation-of-duties rules: features held together (`features`, `action`) or a duty (`duty`). */
export interface SodRulesTable {
  id: string;
  seq: ColumnType<string, never, never>;
  environment: string;
  name: string;
  features: NullableJson<string[]>;
  action: string | null;
  duty: string | null;
  min_amount: number | null;
  created_at: CreatedAt;
  deleted_at: NullableTimestamp;
}

export interface GovernanceTables {
  actor_groups: ActorGroupsTable;
  approval_policies: ApprovalPoliciesTable;
  access_requests: AccessRequestsTable;
  sod_rules: SodRulesTable;
}
