/**
 * What a campaign reviews: the live overrides and credit grants in its scope, each with a
 * recommendation from usage. A metered feature the customer has not used in the window (no usage
 * ledger line in it) is recommended for removal; boolean and config features leave no usage to
 * judge by, so their exceptions are recommended to keep.
 */

import type { Selectable } from 'kysely';
import { sql } from 'kysely';
import type { Executor, Tx } from '../../platform/db.ts';
import { newId } from '../../platform/ids.ts';
import { loadFeatures } from '../catalog/repo.ts';
import type { ReviewDecision, ReviewItemResource, SubjectKind } from './review-schema.ts';
import type { AccessReviewItemsTable } from './review-tables.ts';

const DAY_MS = 86_400_000;

export interface ReviewScope {
  kinds?: SubjectKind[] | undefined;
  features?: string[] | undefined;
  min_amount?: number | undefined;
}

export interface Exception {
  kind: SubjectKind;
  id: string;
  customerId: string;
  feature: string;
}

export type ItemRow = Selectable<AccessReviewItemsTable>;

export function toItemResource(row: ItemRow): ReviewItemResource {
  return {
    id: row.id,
    subject: {
      kind: row.subject_kind as SubjectKind,
      id: row.subject_id,
      customer_id: row.customer_id,
      feature: row.feature,
    },
    recommendation: row.recommendation as ReviewDecision,
    evidence: row.evidence,
    flag_id: row.flag_id,
    decision: row.decision as ReviewDecision | null,
    decided_by: row.decided_by,
    decided_via: row.decided_via as ReviewItemResource['decided_via'],
    comment: row.comment,
    decided_at: row.decided_at?.toISOString() ?? null,
  };
}

/** Overrides and grants that apply now or later, of customers that are not deleted, in scope. */
export async function exceptionsInScope(
  db: Executor | Tx,
  environment: string,
  scope: ReviewScope,
  now: Date,
): Promise<Exception[]> {
  const kinds = scope.kinds ?? ['override', 'grant'];
  const found: Exception[] = [];
  if (kinds.includes('override')) {
    let q = db
      .selectFrom('overrides as o')
      .innerJoin('customers as c', (j) =>
        j.onRef('c.environment', '=', 'o.environment').onRef('c.customer_id', '=', 'o.customer_id'),
      )
      .select(['o.id', 'o.customer_id', 'o.feature'])
      .where('o.environment', '=', environment)
      .where('c.deleted_at', 'is', null)
      .where((eb) => eb.or([eb('o.ended_at', 'is', null), eb('o.ended_at', '>', now)]))
      .where((eb) => eb.or([eb('o.expires_at', 'is', null), eb('o.expires_at', '>', now)]));
    if (scope.features) q = q.where('o.feature', 'in', scope.features);
    for (const r of await q.orderBy('o.id').execute())
      found.push({ kind: 'override', id: r.id, customerId: r.customer_id, feature: r.feature });
  }
  if (kinds.includes('grant')) {
    let q = db
      .selectFrom('credit_grants as g')
      .innerJoin('customers as c', (j) =>
        j.onRef('c.environment', '=', 'g.environment').onRef('c.customer_id', '=', 'g.customer_id'),
      )
      .select(['g.id', 'g.customer_id', 'g.feature'])
      .where('g.environment', '=', environment)
      .where('c.deleted_at', 'is', null)
      .where('g.voided_at', 'is', null)
      .where((eb) => eb.or([eb('g.expires_at', 'is', null), eb('g.expires_at', '>', now)]));
    if (scope.features) q = q.where('g.feature', 'in', scope.features);
    if (scope.min_amount !== undefined) q = q.where('g.amount', '>=', scope.min_amount);
    for (const r of await q.orderBy('g.id').execute())
      found.push({ kind: 'grant', id: r.id, customerId: r.customer_id, feature: r.feature });
  }
  return found;
}

export interface Recommendation {
  recommendation: ReviewDecision;
  evidence: Record<string, unknown>;
}

/** Usage-based recommendations for the exceptions, as of `now` over the last `windowDays`. */
export async function recommend(
  db: Executor | Tx,
  environment: string,
  exceptions: Exception[],
  now: Date,
  windowDays: number,
): Promise<Recommendation[]> {
  const features = await loadFeatures(db, environment);
  const since = new Date(now.getTime() - windowDays * DAY_MS);
  const metered = exceptions.filter((e) => features.get(e.feature)?.type === 'metered');
  const used = new Map<string, number>();
  if (metered.length > 0) {
    const customers = [...new Set(metered.map((e) => e.customerId))];
    const keys = [...new Set(metered.map((e) => e.feature))];
    const rows = await db
      .selectFrom('usage_events')
      .select(['customer_id', 'feature', sql<string>`sum(value)`.as('used')])
      .where('environment', '=', environment)
      .where('customer_id', 'in', customers)
      .where('feature', 'in', keys)
      .where('occurred_at', '>=', since)
      .where('occurred_at', '<', now)
      .groupBy(['customer_id', 'feature'])
      .execute();
    for (const r of rows) used.set(`${r.customer_id}\u0000${r.feature}`, Number(r.used));
  }
  return exceptions.map((e) => {
    const type = features.get(e.feature)?.type ?? 'unknown';
    if (type !== 'metered')
      return {
        recommendation: 'keep',
        evidence: { basis: 'no_usage_signal', feature_type: type, window_days: windowDays },
      };
    const amount = used.get(`${e.customerId}\u0000${e.feature}`) ?? 0;
    return {
      recommendation: amount > 0 ? 'keep' : 'remove',
      evidence: { basis: 'usage_ledger', used: amount, window_days: windowDays, since: since.toISOString() },
    };
  });
}

/** Inserts one item per exception (an exception already in the campaign is skipped). */
export async function insertItems(
  tx: Tx,
  environment: string,
  reviewId: string,
  exceptions: Exception[],
  recommendations: Recommendation[],
  now: Date,
  flagId: string | null = null,
): Promise<ItemRow[]> {
  if (exceptions.length === 0) return [];
  const values = exceptions.map((e, i) => ({
    id: newId('rvi', now.getTime()),
    environment,
    review_id: reviewId,
    subject_kind: e.kind,
    subject_id: e.id,
    customer_id: e.customerId,
    feature: e.feature,
    recommendation: recommendations[i]!.recommendation,
    evidence: JSON.stringify(recommendations[i]!.evidence),
    flag_id: flagId,
    created_at: now,
  }));
  const inserted: ItemRow[] = [];
  for (let i = 0; i < values.length; i += 1000) {
    inserted.push(
      ...(await tx
        .insertInto('access_review_items')
        .values(values.slice(i, i + 1000))
        .onConflict((oc) => oc.columns(['review_id', 'subject_kind', 'subject_id']).doNothing())
        .returningAll()
        .execute()),
    );
  }
  return inserted;
}
