import type { CreatedAt, Json, NullableTimestamp, Timestamp } from '../../platform/db-types.ts';

export interface AccessReviewsTable {
  id: string;
  environment: string;
  name: string;
  /** {kinds?, features?, min_amount?} as given. */
  scope: Json<Record<string, unknown>>;
  /** Actors and `group:<key>` references. */
  reviewers: Json<string[]>;
  due_at: Timestamp;
  /** keep | remove | recommendation */
  default_decision: string;
  /** none | monthly | quarterly */
  recurrence: string;
  window_days: number;
  /** Exceptions flagged while the campaign is open join it as items. */
  collect_flags: boolean;
  /** open | completed */
  status: string;
  previous_id: string | null;
  created_by: string | null;
  created_at: CreatedAt;
  completed_at: NullableTimestamp;
}

export interface AccessReviewItemsTable {
  id: string;
  environment: string;
  review_id: string;
  /** override | grant */
  subject_kind: string;
  subject_id: string;
  customer_id: string;
  feature: string;
  /** keep | remove */
  recommendation: string;
  /** Why: the usage found in the window, or the flag that added the item. */
  evidence: Json<Record<string, unknown>>;
  flag_id: string | null;
  decision: string | null;
  decided_by: string | null;
  /** reviewer | default */
  decided_via: string | null;
  comment: string | null;
  decided_at: NullableTimestamp;
  created_at: CreatedAt;
}

export interface AnomalyFlagsTable {
  id: string;
  environment: string;
  customer_id: string;
  /** overlap | orphan | spike | sod */
  kind: string;
  /** What the flag is about (an override or grant id, `feature@day`, a rule id): one open flag each. */
  subject: string;
  detail: Json<Record<string, unknown>>;
  /** open | resolved | dismissed */
  status: string;
  raised_at: Timestamp;
  closed_at: NullableTimestamp;
  closed_by: string | null;
  comment: string | null;
}

export interface AnomalyScansTable {
  environment: string;
  scanned_at: Timestamp;
}

export interface ReviewTables {
  access_reviews: AccessReviewsTable;
  access_review_items: AccessReviewItemsTable;
  anomaly_flags: AnomalyFlagsTable;
  anomaly_scans: AnomalyScansTable;
}
