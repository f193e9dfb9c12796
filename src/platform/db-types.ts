import type { ColumnType, Generated } from 'kysely';

/** A timestamptz column: read as Date, written as Date or an ISO string, defaulted by the database. */
export type CreatedAt = ColumnType<Date, Date | string | undefined, never>;
export type Timestamp = ColumnType<Date, Date | string, Date | string>;
export type NullableTimestamp = ColumnType<
  Date | null,
  Date | string | null | undefined,
  Date | string | null
>;
/** A jsonb column: written as a JSON string (the pg driver would otherwise send arrays as Postgres arrays). */
export type Json<T> = ColumnType<T, string, string>;
export type NullableJson<T> = ColumnType<T | null, string | null | undefined, string | null>;

export interface EnvironmentsTable {
  id: string;
  name: string;
  settings: Json<Record<string, unknown>>;
  created_at: CreatedAt;
}

export interface ApiKeysTable {
  id: string;
  environment: string;
  name: string;
  scopes: Json<string[]>;
  prefix: string;
  secret_hash: string;
  created_at: CreatedAt;
  revoked_at: NullableTimestamp;
  /** NULL: TESSERA_RATE_LIMIT_DEFAULT; 0: unlimited. */
  rate_limit_per_second: number | null;
}

export interface IdempotencyKeysTable {
  environment: string;
  /** The API key that sent the request: a record is never seen by another key. */
  api_key_id: string;
  key: string;
  method: string;
  path: string;
  request_hash: string;
  status_code: number | null;
  response_body: string | null;
  response_content_type: string | null;
  created_at: CreatedAt;
  expires_at: Timestamp;
}

export interface AuditHeadsTable {
  environment: string;
  last_index: number;
  last_hash: string;
}

export interface AuditEventsTable {
  id: string;
  environment: string;
  chain_index: number;
  actor: Json<{ type: string; id: string | null; name: string | null }>;
  action: string;
  target: Json<{ type: string; id: string }>;
  customer_id: string | null;
  before: NullableJson<unknown>;
  after: NullableJson<unknown>;
  request_id: string | null;
  at: Timestamp;
  prev_hash: string;
  hash: string;
}

/** Signed checkpoints of the audit chain (see modules/audit/checkpoints.ts). */
export interface AuditCheckpointsTable {
  id: string;
  environment: string;
  seq: number;
  event_id: string;
  event_count: number;
  event_hash: string;
  created_at: Timestamp;
  key_id: string;
  signature: string;
}

export interface OutboxTable {
  id: Generated<number>;
  environment: string;
  customer_id: string | null;
  topic: string;
  payload: Json<Record<string, unknown>>;
  created_at: CreatedAt;
  attempts: Generated<number>;
  next_attempt_at: ColumnType<Date, Date | string | undefined, Date | string>;
  dispatched_at: NullableTimestamp;
  last_error: string | null;
}

export interface PlatformTables {
  environments: EnvironmentsTable;
  api_keys: ApiKeysTable;
  idempotency_keys: IdempotencyKeysTable;
  audit_heads: AuditHeadsTable;
  audit_events: AuditEventsTable;
  audit_checkpoints: AuditCheckpointsTable;
  outbox: OutboxTable;
}

/**
 * Every table the app's Kysely instance knows. Platform declares its own here; the modules' tables
 * are added by the root src/database.ts, which augments this interface (types only), so platform
 * never imports a module and each slice keeps its table types beside its repo.
 */
export interface DB extends PlatformTables {}
