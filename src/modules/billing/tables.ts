import type { ColumnType, Generated } from 'kysely';
import type { Json, NullableTimestamp, Timestamp } from '../../platform/db-types.ts';

/** One environment's Stripe connection; the two secrets are sealed (platform/secret-box.ts). */
export interface StripeSettingsTable {
  environment: string;
  secret_key: string | null;
  /** The secret key's mode and last four characters, to show which key is set. */
  secret_key_hint: string | null;
  webhook_secret: string | null;
  lifecycle_owner: 'stripe' | 'tessera';
  created_at: Timestamp;
  updated_at: Timestamp;
}

export type StripeEventStatus = 'received' | 'processing' | 'applied' | 'ignored' | 'failed';

/** One verified Stripe webhook event, stored once per environment and Stripe event id. */
export interface StripeEventsTable {
  environment: string;
  /** Stripe's `evt_…` id. */
  id: string;
  type: string;
  api_version: string | null;
  /** Stripe's `created`, in seconds (bigint: pg returns it as a string). */
  created: ColumnType<string, number, never>;
  livemode: boolean;
  object_type: string | null;
  object_id: string | null;
  payload: Json<Record<string, unknown>>;
  status: StripeEventStatus;
  attempts: Generated<number>;
  last_error: string | null;
  /** What processing said of the event (`ignored`: why). */
  detail: string | null;
  received_at: Timestamp;
  /** When a waiting event may be tried; while processing, when the claim lapses. */
  next_attempt_at: Timestamp;
  processed_at: NullableTimestamp;
}

export interface BillingTables {
  stripe_settings: StripeSettingsTable;
  stripe_events: StripeEventsTable;
}
