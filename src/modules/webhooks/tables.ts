import type { Json, NullableTimestamp, Timestamp } from '../../platform/db-types.ts';

export interface WebhookEndpointsTable {
  id: string;
  environment: string;
  url: string;
  /** Public event types the endpoint receives; empty: every type. */
  event_types: Json<string[]>;
  description: string | null;
  /** The `whsec_` secret, sealed (platform/secret-box.ts) with the endpoint id as context. */
  secret: string;
  created_at: Timestamp;
  disabled_at: NullableTimestamp;
}

export interface WebhookDeliveriesTable {
  /** The Standard Webhooks `webhook-id`: the same on every attempt and redelivery. */
  id: string;
  endpoint_id: string;
  environment: string;
  /** The outbox event it came from: orders a customer's deliveries. */
  outbox_id: string;
  event_type: string;
  customer_id: string | null;
  /** The body sent: `{type, timestamp, data}`. */
  payload: Json<Record<string, unknown>>;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_attempt_at: Timestamp;
  last_status: number | null;
  last_error: string | null;
  created_at: Timestamp;
  delivered_at: NullableTimestamp;
}

export interface WebhookTables {
  webhook_endpoints: WebhookEndpointsTable;
  webhook_deliveries: WebhookDeliveriesTable;
}
