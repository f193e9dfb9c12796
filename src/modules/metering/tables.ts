import type { ColumnType, Generated } from 'kysely';
import type { CreatedAt, Json, NullableTimestamp, Timestamp } from '../../platform/db-types.ts';

/** The usage ledger: one row per accepted event (and per committed reservation). */
export interface UsageEventsTable {
  id: Generated<number>;
  environment: string;
  customer_id: string;
  feature: string;
  idempotency_key: string;
  /** The value as reported (for `unique` features: 1). */
  value: number;
  /** What the period's counter grew by: the value (sum), the rise of the peak (max), 1 or 0 (unique). */
  counted: number;
  member: string | null;
  occurred_at: Timestamp;
  period_start: Timestamp;
  period_end: NullableTimestamp;
  overage: number;
  /** Credit this event drew, all grants together. */
  credit: number;
  /** grant id -> credit this event drew from it. */
  credit_draws: Json<Record<string, number>>;
  /** The answer the caller got, replayed for a repeated idempotency key. */
  answer: Json<Record<string, unknown>>;
  reservation_id: string | null;
  recorded_at: CreatedAt;
}

export interface UsageCountersTable {
  environment: string;
  customer_id: string;
  feature: string;
  period_start: Timestamp;
  period_end: NullableTimestamp;
  used: number;
  overage: number;
  credit_used: number;
}

export interface UsageCreditTable {
  environment: string;
  customer_id: string;
  feature: string;
  grant_id: string;
  used: number;
}

export interface UsageMembersTable {
  environment: string;
  customer_id: string;
  feature: string;
  period_start: Timestamp;
  member: string;
}

export interface UsageRefusalsTable {
  environment: string;
  customer_id: string;
  idempotency_key: string;
  answer: Json<Record<string, unknown>>;
  created_at: CreatedAt;
}

export interface UsageThresholdsTable {
  environment: string;
  customer_id: string;
  feature: string;
  period_start: Timestamp;
  threshold: number;
  used: number;
  limit: number;
  reached_at: CreatedAt;
}

/** Usage records the flusher set aside instead of writing them to the ledger (see ledger/dead-letters.ts). */
export interface UsageDeadLettersTable {
  id: Generated<number>;
  stream: string;
  entry_id: string;
  /** The event's place among its entry's events (a script call's entry holds up to 100). */
  position: number;
  environment: string;
  customer_id: string;
  /** The stream record as a JSON string. */
  record: string;
  reason: string;
  detail: string | null;
  created_at: CreatedAt;
}

export interface ReservationsTable {
  id: string;
  environment: string;
  customer_id: string;
  feature: string;
  amount: number;
  committed_amount: number | null;
  period_start: Timestamp;
  period_end: NullableTimestamp;
  status: string;
  expires_at: Timestamp;
  created_at: CreatedAt;
  settled_at: NullableTimestamp;
}

export interface MeteringStateTable {
  key: string;
  value: ColumnType<string, string, string>;
}

export interface MeteringTables {
  usage_events: UsageEventsTable;
  usage_counters: UsageCountersTable;
  usage_credit: UsageCreditTable;
  usage_members: UsageMembersTable;
  usage_refusals: UsageRefusalsTable;
  usage_thresholds: UsageThresholdsTable;
  usage_dead_letters: UsageDeadLettersTable;
  reservations: ReservationsTable;
  metering_state: MeteringStateTable;
}
