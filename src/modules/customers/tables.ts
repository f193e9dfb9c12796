import type { CreatedAt, Json, NullableTimestamp, Timestamp } from '../../platform/db-types.ts';

export interface CustomersTable {
  environment: string;
  customer_id: string;
  name: string | null;
  email: string | null;
  attributes: Json<Record<string, string | number | boolean>>;
  stripe_customer_id: string | null;
  version: number;
  created_at: CreatedAt;
  updated_at: Timestamp;
  deleted_at: NullableTimestamp;
}

export interface CustomerTables {
  customers: CustomersTable;
}
