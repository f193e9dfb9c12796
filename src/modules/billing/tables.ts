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

/** The high-water mark of one Stripe object: the newest event applied, and its state as Tessera read it. */
export interface StripeObjectsTable {
  environment: string;
  object_type: 'subscription' | 'invoice' | 'customer';
  object_id: string;
  /** Seconds, as Stripe's `event.created` (pg returns bigint as a string). */
  last_event_created: ColumnType<string, number, number>;
  last_event_id: string;
  state_hash: string;
  state: Json<unknown>;
  updated_at: Timestamp;
}

/** Which Tessera subscription stands for which item of a Stripe subscription. */
export interface StripeSubscriptionLinksTable {
  environment: string;
  stripe_subscription_id: string;
  /** `base`, or the add-on item's id. */
  slot: string;
  subscription_id: string;
  created_at: Timestamp;
}

/** How far an environment's usage ledger has been reported to Stripe meters (`usage_events.id`). */
export interface StripeUsageReportsTable {
  environment: string;
  /** The last `usage_events.id` reported (bigint, parsed as a number by platform/db.ts). */
  last_event_id: number;
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

/** One drift item of a reconciliation: a field where Stripe and Tessera differed. */
export interface DriftItem {
  /** Null for a customer's item. */
  stripe_subscription_id: string | null;
  customer_id: string | null;
  tessera_subscription_id: string | null;
  field: string;
  tessera: unknown;
  stripe: unknown;
  action: 'repaired' | 'would_repair' | 'reported';
}

export interface DriftReport {
  items: DriftItem[];
  counts: {
    stripe_subscriptions: number;
    stripe_customers: number;
    repaired: number;
    would_repair: number;
    reported: number;
  };
}

/** One run of the Stripe reconciliation and its drift report. */
export interface StripeReconciliationsTable {
  id: string;
  environment: string;
  started_at: Timestamp;
  finished_at: NullableTimestamp;
  dry_run: boolean;
  status: 'running' | 'succeeded' | 'failed';
  report: Json<DriftReport>;
  error: string | null;
}

export interface BillingTables {
  stripe_reconciliations: StripeReconciliationsTable;
  stripe_settings: StripeSettingsTable;
  stripe_objects: StripeObjectsTable;
  stripe_subscription_links: StripeSubscriptionLinksTable;
  stripe_usage_reports: StripeUsageReportsTable;
  stripe_events: StripeEventsTable;
}
