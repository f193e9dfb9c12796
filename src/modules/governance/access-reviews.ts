/**
 * Access reviews: campaigns that certify every live exception (override or credit grant) in their
 * scope. Reviewers keep or remove each item; "remove" ends the override or voids the grant through
 * the same verbs as the direct routes, in the decision's transaction. When a campaign is due, the
 * scheduler gives undecided items the campaign's default and, for a recurring campaign, opens the
 * next one with its items computed afresh.
 */
import type { Selectable } from 'kysely';
import { addPeriods } from '../../domain/periods.ts';
import {
  type Actor,
  type AppDeps,
  type Ctx,
  reader,
  requireScope,
  systemContext,
  type TxCtx,
  withTransaction,
} from '../../platform/context.ts';
import { Conflict, NotFound, ValidationFailed } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import { voidGrant } from '../overrides/grant-service.ts';
import { endOverride } from '../overrides/override-service.ts';
import { DecisionRefused } from './access-requests.ts';
import { groupMembers } from './actor-groups.ts';
import {
  type Exception,
  exceptionsInScope,
  type ItemRow,
  insertItems,
  type ReviewScope,
  recommend,
  toItemResource,
} from './review-items.ts';
import {
  type CreateReviewInput,
  DEFAULT_WINDOW_DAYS,
  type ReviewDecision,
  type ReviewItemResource,
  type ReviewResource,
} from './review-schema.ts';
import type { AccessReviewsTable } from './review-tables.ts';
import { GROUP_PREFIX } from './schema.ts';

type ReviewRow = Selectable<AccessReviewsTable>;
type Counts = { total: number; undecided: number };

function toResource(row: ReviewRow, counts: Counts, items?: ItemRow[]): ReviewResource {
  return {
    id: row.id,
    name: row.name,
    scope: row.scope,
    reviewers: row.reviewers,
    due_at: row.due_at.toISOString(),
    default_decision: row.default_decision as ReviewResource['default_decision'],
    recurrence: row.recurrence as ReviewResource['recurrence'],
    window_days: row.window_days,
    collect_flags: row.collect_flags,
    status: row.status as ReviewResource['status'],
    previous_id: row.previous_id,
    created_by: row.created_by,
    created_at: row.created_at.toISOString(),
    completed_at: row.completed_at?.toISOString() ?? null,
    ...(items ? { items: items.map(toItemResource) } : {}),
    item_counts: counts,
  };
}

function countsOf(items: ItemRow[]): Counts {
  return { total: items.length, undecided: items.filter((i) => i.decision === null).length };
}

interface CampaignSpec {
  name: string;
  scope: ReviewScope;
  reviewers: string[];
  dueAt: Date;
  defaultDecision: string;
  recurrence: string;
  windowDays: number;
  collectFlags: boolean;
  previousId: string | null;
  createdBy: string | null;
}

/** Opens a campaign in the caller's transaction: the review, its items, the audit record and `review.created`. */
async function openCampaign(t: TxCtx, spec: CampaignSpec): Promise<ReviewResource> {
  const row = await t.tx
    .insertInto('access_reviews')
    .values({
      id: newId('arev', t.now.getTime()),
      environment: t.environment,
      name: spec.name,
      scope: JSON.stringify(spec.scope),
      reviewers: JSON.stringify(spec.reviewers),
      due_at: spec.dueAt,
      default_decision: spec.defaultDecision,
      recurrence: spec.recurrence,
      window_days: spec.windowDays,
      collect_flags: spec.collectFlags,
      status: 'open',
      previous_id: spec.previousId,
      created_by: spec.createdBy,
      created_at: t.now,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  const exceptions = await exceptionsInScope(t.tx, t.environment, spec.scope, t.now);
  const recommendations = await recommend(t.tx, t.environment, exceptions, t.now, spec.windowDays);
  const items = await insertItems(t.tx, t.environment, row.id, exceptions, recommendations, t.now);
  const review = toResource(row, countsOf(items), items);
  t.audit({ action: 'review.created', target: { type: 'access_review', id: row.id }, after: review });
  const { items: _items, ...summary } = review;
  t.emit({ topic: 'review.created', payload: summary });
  return review;
}

export async function createAccessReview(ctx: Ctx, input: CreateReviewInput): Promise<ReviewResource> {
  requireScope(ctx, 'admin');
  const dueAt = new Date(input.due_at);
  const now = ctx.deps.clock.now();
  if (dueAt <= now) throw new ValidationFailed([{ path: 'due_at', message: 'must be in the future' }]);
  return withTransaction(ctx, (t) =>
    openCampaign(t, {
      name: input.name,
      scope: input.scope,
      reviewers: input.reviewers,
      dueAt,
      defaultDecision: input.default_decision,
      recurrence: input.recurrence ?? 'none',
      windowDays: input.window_days ?? DEFAULT_WINDOW_DAYS,
      collectFlags: input.collect_flags ?? false,
      previousId: null,
      createdBy: ctx.actor.person ?? null,
    }),
  );
}

async function loadItems(db: Ctx['deps']['db'] | TxCtx['tx'], reviewId: string): Promise<ItemRow[]> {
  return db
    .selectFrom('access_review_items')
    .selectAll()
    .where('review_id', '=', reviewId)
    .orderBy('id')
    .execute();
}

export async function getAccessReview(ctx: Ctx, id: string): Promise<ReviewResource> {
  requireScope(ctx, 'admin');
  const db = reader(ctx);
  const row = await db
    .selectFrom('access_reviews')
    .selectAll()
    .where('environment', '=', ctx.environment)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) throw new NotFound('access_review', id);
  const items = await loadItems(db, id);
  return toResource(row, countsOf(items), items);
}

export async function listAccessReviews(
  ctx: Ctx,
  query: { limit: number; cursor?: string | undefined; status?: string | undefined },
) {
  requireScope(ctx, 'admin');
  const db = reader(ctx);
  const after = decodeCursor<{ id: string }>(query.cursor, { id: 'string' });
  let q = db.selectFrom('access_reviews').selectAll().where('environment', '=', ctx.environment);
  if (query.status !== undefined) q = q.where('status', '=', query.status);
  if (after) q = q.where('id', '>', after.id);
  const rows = await q
    .orderBy('id')
    .limit(query.limit + 1)
    .execute();
  const counts = new Map<string, Counts>();
  if (rows.length > 0) {
    const tallies = await db
      .selectFrom('access_review_items')
      .select((eb) => [
        'review_id',
        eb.fn.countAll<string>().as('total'),
        eb.fn.count<string>('id').filterWhere('decision', 'is', null).as('undecided'),
      ])
      .where(
        'review_id',
        'in',
        rows.map((r) => r.id),
      )
      .groupBy('review_id')
      .execute();
    for (const t of tallies)
      counts.set(t.review_id, { total: Number(t.total), undecided: Number(t.undecided) });
  }
  return page(
    rows,
    query.limit,
    (r) => toResource(r, counts.get(r.id) ?? { total: 0, undecided: 0 }),
    (r) => ({ id: r.id }),
  );
}

async function isReviewer(ctx: Ctx, reviewers: string[], person: string): Promise<boolean> {
  if (reviewers.includes(person)) return true;
  const groups = reviewers.filter((r) => r.startsWith(GROUP_PREFIX)).map((r) => r.slice(GROUP_PREFIX.length));
  const members = await groupMembers(ctx, groups);
  return [...members.values()].some((m) => m.includes(person));
}

async function lockReview(t: TxCtx, id: string): Promise<ReviewRow> {
  const row = await t.tx
    .selectFrom('access_reviews')
    .selectAll()
    .where('environment', '=', t.environment)
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
  if (!row) throw new NotFound('access_review', id);
  return row;
}

/** Ends the exception when the decision is "remove" (already ended or voided: nothing to do). */
async function carryOut(t: TxCtx, item: ItemRow, decision: ReviewDecision): Promise<void> {
  if (decision !== 'remove') return;
  if (item.subject_kind === 'override') await endOverride(t, item.subject_id);
  else await voidGrant(t, item.subject_id);
}

async function recordDecision(
  t: TxCtx,
  review: ReviewRow,
  item: ItemRow,
  decision: ReviewDecision,
  via: 'reviewer' | 'default',
  person: string | null,
  comment: string | null,
): Promise<ItemRow> {
  const decided = await t.tx
    .updateTable('access_review_items')
    .set({ decision, decided_via: via, decided_by: person, comment, decided_at: t.now })
    .where('id', '=', item.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  await carryOut(t, item, decision);
  const after = { review_id: review.id, ...toItemResource(decided) };
  t.audit({
    action: 'review.item_decided',
    target: { type: 'access_review_item', id: item.id },
    customerId: item.customer_id,
    before: { review_id: review.id, ...toItemResource(item) },
    after,
  });
  t.emit({ topic: 'review.item_decided', customerId: item.customer_id, payload: after });
  return decided;
}

export async function decideReviewItem(
  ctx: Ctx,
  reviewId: string,
  itemId: string,
  input: { decision: ReviewDecision; comment?: string | undefined },
): Promise<ReviewItemResource> {
  requireScope(ctx, 'admin');
  const person = ctx.actor.person;
  if (person === undefined)
    throw new ValidationFailed([{ path: 'Tessera-Actor', message: 'required: name the reviewer deciding' }]);
  return withTransaction(ctx, async (t) => {
    const review = await lockReview(t, reviewId);
    const item = await t.tx
      .selectFrom('access_review_items')
      .selectAll()
      .where('review_id', '=', reviewId)
      .where('id', '=', itemId)
      .forUpdate()
      .executeTakeFirst();
    if (!item) throw new NotFound('access_review_item', itemId);
    if (!(await isReviewer(t, review.reviewers, person)))
      throw new DecisionRefused('not_a_reviewer', `'${person}' is not a reviewer of this campaign`);
    if (review.status !== 'open')
      throw new Conflict('review_closed', `Access review '${reviewId}' is already ${review.status}`);
    if (item.decision !== null)
      throw new Conflict('item_decided', `Item '${itemId}' was already decided: ${item.decision}`);
    const decided = await recordDecision(
      t,
      review,
      item,
      input.decision,
      'reviewer',
      person,
      input.comment ?? null,
    );
    return toItemResource(decided);
  });
}

function defaultFor(review: ReviewRow, item: ItemRow): ReviewDecision {
  return review.default_decision === 'recommendation'
    ? (item.recommendation as ReviewDecision)
    : (review.default_decision as ReviewDecision);
}

const PERIOD_MONTHS: Record<string, number> = { monthly: 1, quarterly: 3 };

/**
 * Closes one due campaign in the caller's transaction: undecided items take the default, the
 * campaign completes, and a recurring one opens its successor due one period later. Returns null
 * when another worker holds it or it is no longer open and due.
 */
async function closeCampaign(t: TxCtx, id: string): Promise<{ next: string | null } | null> {
  const review = await t.tx
    .selectFrom('access_reviews')
    .selectAll()
    .where('id', '=', id)
    .forUpdate()
    .skipLocked()
    .executeTakeFirst();
  if (review?.status !== 'open' || review.due_at > t.now) return null;
  const items = await loadItems(t.tx, id);
  const final: ItemRow[] = [];
  for (const item of items) {
    final.push(
      item.decision === null
        ? await recordDecision(t, review, item, defaultFor(review, item), 'default', null, null)
        : item,
    );
  }
  const completed = await t.tx
    .updateTable('access_reviews')
    .set({ status: 'completed', completed_at: t.now })
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirstOrThrow();
  const summary = {
    ...toResource(completed, countsOf(final)),
    outcome: {
      kept: final.filter((i) => i.decision === 'keep').length,
      removed: final.filter((i) => i.decision === 'remove').length,
      by_default: items.filter((i) => i.decision === null).length,
    },
  };
  t.audit({
    action: 'review.completed',
    target: { type: 'access_review', id },
    before: toResource(review, countsOf(items)),
    after: summary,
  });
  t.emit({ topic: 'review.completed', payload: summary });
  const months = PERIOD_MONTHS[review.recurrence];
  if (months === undefined) return { next: null };
  const next = await openCampaign(t, {
    name: review.name,
    scope: review.scope as ReviewScope,
    reviewers: review.reviewers,
    dueAt: addPeriods('month', review.due_at, months),
    defaultDecision: review.default_decision,
    recurrence: review.recurrence,
    windowDays: review.window_days,
    collectFlags: review.collect_flags,
    previousId: review.id,
    createdBy: review.created_by,
  });
  return { next: next.id };
}

/**
 * The scheduler's step: closes every open campaign, in every environment, due by the deps' clock,
 * each in its own transaction as `actor`. Returns how many it closed.
 */
export async function closeDueReviews(deps: AppDeps, actor: Actor): Promise<number> {
  const now = deps.clock.now();
  const due = await deps.db
    .selectFrom('access_reviews')
    .select(['environment', 'id'])
    .where('status', '=', 'open')
    .where('due_at', '<=', now)
    .orderBy('due_at')
    .limit(500)
    .execute();
  let closed = 0;
  for (const { environment, id } of due) {
    const done = await withTransaction(systemContext(deps, environment, actor), (t) => closeCampaign(t, id));
    if (done) closed += 1;
  }
  return closed;
}

/**
 * Puts a flagged exception before every open campaign of the environment that collects flags
 * (whatever their scope), in the flag's transaction: a new item recommended for removal with the
 * flag as evidence, or, when the campaign already lists it undecided, that item re-recommended.
 */
export async function addFlaggedException(
  t: TxCtx,
  exception: Exception,
  flag: { id: string; kind: string },
): Promise<number> {
  const reviews = await t.tx
    .selectFrom('access_reviews')
    .select('id')
    .where('environment', '=', t.environment)
    .where('status', '=', 'open')
    .where('collect_flags', '=', true)
    // Waits for a campaign being closed, and then no longer sees it as open.
    .forShare()
    .execute();
  const evidence = { basis: 'flag', flag_id: flag.id, flag_kind: flag.kind };
  let touched = 0;
  for (const review of reviews) {
    const [added] = await insertItems(
      t.tx,
      t.environment,
      review.id,
      [exception],
      [{ recommendation: 'remove', evidence }],
      t.now,
      flag.id,
    );
    const before = added
      ? undefined
      : await t.tx
          .selectFrom('access_review_items')
          .selectAll()
          .where('review_id', '=', review.id)
          .where('subject_kind', '=', exception.kind)
          .where('subject_id', '=', exception.id)
          .where('decision', 'is', null)
          .forUpdate()
          .executeTakeFirst();
    const item =
      added ??
      (before &&
        (await t.tx
          .updateTable('access_review_items')
          .set({ recommendation: 'remove', evidence: JSON.stringify(evidence), flag_id: flag.id })
          .where('id', '=', before.id)
          .returningAll()
          .executeTakeFirstOrThrow()));
    if (!item) continue;
    touched += 1;
    t.audit({
      action: added ? 'review.item_added' : 'review.item_flagged',
      target: { type: 'access_review_item', id: item.id },
      customerId: item.customer_id,
      ...(before ? { before: { review_id: review.id, ...toItemResource(before) } } : {}),
      after: { review_id: review.id, ...toItemResource(item) },
    });
  }
  return touched;
}
