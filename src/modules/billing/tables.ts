import type { Timestamp } from '../../platform/db-types.ts';

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

/** How far an environment's usage ledger has been reported to Stripe meters (`usage_events.id`). */
export interface StripeUsageReportsTable {
  environment: string;
  /** The last `usage_events.id` reported (bigint, parsed as a number by platform/db.ts). */
  last_event_id: number;
  updated_at: Timestamp;
}

export interface BillingTables {
  stripe_settings: StripeSettingsTable;
  stripe_usage_reports: StripeUsageReportsTable;
}
