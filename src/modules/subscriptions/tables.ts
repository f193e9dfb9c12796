import type { ColumnType } from 'kysely';
import type { CreatedAt, NullableJson, NullableTimestamp, Timestamp } from '../../platform/db-types.ts';

export interface SubscriptionsTable {
  id: string;
  environment: string;
  customer_id: string;
  plan_key: string;
  plan_version: number;
  addon: boolean;
  status: string;
  quantity: number;
  started_at: Timestamp;
  billing_anchor: Timestamp;
  trial_ends_at: NullableTimestamp;
  trial_on_end: string | null;
  trial_downgrade_to: string | null;
  current_period_start: Timestamp;
  current_period_end: Timestamp;
  cancel_at_period_end: boolean;
  /** {plan_key, plan_version, at} */
  scheduled_change: NullableJson<{ plan_key: string; plan_version: number | null; at: string }>;
  past_due_since: NullableTimestamp;
  paused_at: NullableTimestamp;
  ended_at: NullableTimestamp;
  stripe_subscription_id: string | null;
  /** The Stripe subscription item that carries the plan's price (filled from Stripe's events). */
  stripe_item_id: string | null;
  created_at: CreatedAt;
  updated_at: ColumnType<Date, Date | string | undefined, Date | string>;
}

export interface SubscriptionTransitionsTable {
  environment: string;
  key: string;
  subscription_id: string;
  event: string;
  due_at: Timestamp;
  applied_at: CreatedAt;
}

export interface SubscriptionTables {
  subscriptions: SubscriptionsTable;
  subscription_transitions: SubscriptionTransitionsTable;
}
