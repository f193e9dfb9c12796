/**
 * Reconciliation: lists the environment's Stripe customers and subscriptions (every status), makes
 * Tessera match what Stripe shows now, and records a drift report per run (stripe_reconciliations).
 * - Each Stripe subscription is applied as its current state through the apply path
 *   (apply/current.ts): Stripe is the source of truth, and its state counts as newer than any event.
 * - A Tessera subscription linked to a Stripe subscription the listing did not show is looked up;
 *   one Stripe does not know (404) is ended; one it knows is applied as it is.
 * - A Stripe customer whose `metadata.tessera_customer_id` names an unlinked Tessera customer is linked.
 * A dry run does the same work in rolled-back transactions and reports `would_repair`.
 */
import type { Selectable } from 'kysely';
import type Stripe from 'stripe';
import { type Ctx, reader, requireScope, withTransaction } from '../../platform/context.ts';
import { NotFound } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import { getCustomerRow } from '../customers/repo.ts';
import { upsertCustomer } from '../customers/service.ts';
import { applyCurrentSubscription, endVanishedSubscription, type ReconcileRun } from './apply/current.ts';
import { tesseraCustomerIdOf } from './apply/snapshot.ts';
import { stripeClient, stripeConnection } from './settings.ts';
import { asStripeError, notConfigured } from './stripe-calls.ts';
import type { DriftItem, DriftReport, StripeReconciliationsTable } from './tables.ts';

export interface ReconciliationView {
  id: string;
  status: 'running' | 'succeeded' | 'failed';
  dry_run: boolean;
  started_at: string;
  finished_at: string | null;
  error: string | null;
  report: DriftReport;
}

const emptyReport = (): DriftReport => ({
  items: [],
  counts: { stripe_subscriptions: 0, stripe_customers: 0, repaired: 0, would_repair: 0, reported: 0 },
});

function viewOf(row: Selectable<StripeReconciliationsTable>): ReconciliationView {
  return {
    id: row.id,
    status: row.status,
    dry_run: row.dry_run,
    started_at: row.started_at.toISOString(),
    finished_at: row.finished_at?.toISOString() ?? null,
    error: row.error,
    report: row.report,
  };
}

/**
 * `POST /v1/stripe/reconciliations`: one run, now. A failure ends the run `failed` (kept, with what
 * it had found) and is thrown, a Stripe failure as a 502 `stripe_error`.
 */
export async function runReconciliation(ctx: Ctx, input: { dry_run?: boolean }): Promise<ReconciliationView> {
  const { view, failure } = await executeReconciliation(ctx, input);
  if (failure) throw asStripeError(failure);
  return view;
}

/** One run, now; a failure is recorded on the run and returned, not thrown (the CLI, the scheduled job). */
export async function executeReconciliation(
  ctx: Ctx,
  input: { dry_run?: boolean },
): Promise<{ view: ReconciliationView; failure: unknown }> {
  requireScope(ctx, 'admin');
  const connection = await stripeConnection(ctx.deps, ctx.deps.db, ctx.environment);
  if (!connection?.secretKey) throw notConfigured(ctx.environment);
  const client = stripeClient(connection.secretKey, ctx.deps.config.stripeApiBase);
  const started = ctx.deps.clock.now();
  const run: ReconcileRun = {
    id: newId('rec', started.getTime()),
    dryRun: input.dry_run ?? false,
    listedAfter: Math.floor(started.getTime() / 1000),
  };
  await ctx.deps.db
    .insertInto('stripe_reconciliations')
    .values({
      id: run.id,
      environment: ctx.environment,
      started_at: started,
      finished_at: null,
      dry_run: run.dryRun,
      status: 'running',
      report: JSON.stringify(emptyReport()),
      error: null,
    })
    .execute();
  const report = emptyReport();
  let failure: unknown = null;
  try {
    await reconcile(ctx, client, run, report);
  } catch (err) {
    failure = err;
    ctx.deps.logger.error({ err, reconciliation: run.id }, 'Stripe reconciliation failed');
  }
  for (const item of report.items) report.counts[item.action]++;
  const row = await ctx.deps.db
    .updateTable('stripe_reconciliations')
    .set({
      status: failure ? 'failed' : 'succeeded',
      finished_at: ctx.deps.clock.now(),
      report: JSON.stringify(report),
      error: failure ? String((failure as Error)?.message ?? failure) : null,
    })
    .where('id', '=', run.id)
    .returningAll()
    .executeTakeFirstOrThrow();
  return { view: viewOf(row), failure };
}

async function reconcile(ctx: Ctx, client: Stripe, run: ReconcileRun, report: DriftReport): Promise<void> {
  const add = (items: DriftItem[]) => report.items.push(...items);
  const seen = new Set<string>();
  for await (const sub of client.subscriptions.list({ status: 'all', limit: 100 })) {
    report.counts.stripe_subscriptions++;
    seen.add(sub.id);
    add(await applyCurrentSubscription(ctx, sub, run));
  }
  for (const id of await linkedLiveStripeSubscriptions(ctx)) {
    if (seen.has(id)) continue;
    const found = await retrieveOrNull(client, id);
    add(
      found ? await applyCurrentSubscription(ctx, found, run) : await endVanishedSubscription(ctx, id, run),
    );
  }
  for await (const customer of client.customers.list({ limit: 100 })) {
    report.counts.stripe_customers++;
    const item = await linkNamedCustomer(ctx, customer, run);
    if (item) report.items.push(item);
  }
}

/** The Stripe subscriptions that live Tessera subscriptions are linked to. */
async function linkedLiveStripeSubscriptions(ctx: Ctx): Promise<string[]> {
  const db = ctx.deps.db;
  const live = ['canceled', 'expired'];
  const direct = await db
    .selectFrom('subscriptions')
    .select('stripe_subscription_id as id')
    .where('environment', '=', ctx.environment)
    .where('stripe_subscription_id', 'is not', null)
    .where('status', 'not in', live)
    .execute();
  const viaLinks = await db
    .selectFrom('stripe_subscription_links as l')
    .innerJoin('subscriptions as s', (j) =>
      j.onRef('s.environment', '=', 'l.environment').onRef('s.id', '=', 'l.subscription_id'),
    )
    .select('l.stripe_subscription_id as id')
    .where('l.environment', '=', ctx.environment)
    .where('s.status', 'not in', live)
    .execute();
  return [...new Set([...direct, ...viaLinks].map((r) => r.id).filter((id): id is string => id !== null))];
}

async function retrieveOrNull(client: Stripe, id: string): Promise<Stripe.Subscription | null> {
  try {
    return await client.subscriptions.retrieve(id);
  } catch (err) {
    if ((err as { statusCode?: unknown } | null)?.statusCode === 404) return null;
    throw err;
  }
}

async function linkNamedCustomer(
  ctx: Ctx,
  customer: Stripe.Customer,
  run: ReconcileRun,
): Promise<DriftItem | null> {
  const named = tesseraCustomerIdOf(customer);
  if (!named) return null;
  const row = await getCustomerRow(ctx.deps.db, ctx.environment, named);
  if (!row || row.deleted_at || row.stripe_customer_id !== null) return null;
  const linked = await ctx.deps.db
    .selectFrom('customers')
    .select('customer_id')
    .where('environment', '=', ctx.environment)
    .where('stripe_customer_id', '=', customer.id)
    .executeTakeFirst();
  if (linked) return null;
  const item: DriftItem = {
    stripe_subscription_id: null,
    customer_id: named,
    tessera_subscription_id: null,
    field: 'stripe_customer_id',
    tessera: null,
    stripe: customer.id,
    action: run.dryRun ? 'would_repair' : 'repaired',
  };
  if (run.dryRun) return item;
  const actor = { type: 'stripe' as const, id: run.id, name: 'reconciliation' };
  await withTransaction({ ...ctx, actor }, async (t) => {
    await upsertCustomer(t, named, { stripe_customer_id: customer.id });
    t.audit({
      action: 'stripe.drift_repaired',
      target: { type: 'customer', id: named },
      customerId: named,
      before: { stripe_customer_id: null },
      after: { stripe_customer_id: customer.id, reconciliation_id: run.id },
    });
  });
  return item;
}

/** `GET /v1/stripe/reconciliations`: newest first. */
export async function listReconciliations(
  ctx: Ctx,
  query: { limit: number; cursor?: string },
): Promise<{ data: ReconciliationView[]; next_cursor: string | null }> {
  requireScope(ctx, 'admin');
  const after = decodeCursor<{ id: string }>(query.cursor, { id: 'string' });
  let q = reader(ctx)
    .selectFrom('stripe_reconciliations')
    .selectAll()
    .where('environment', '=', ctx.environment)
    .orderBy('id', 'desc')
    .limit(query.limit + 1);
  if (after) q = q.where('id', '<', after.id);
  return page(await q.execute(), query.limit, viewOf, (row) => ({ id: row.id }));
}

/** `GET /v1/stripe/reconciliations/{id}`. */
export async function getReconciliation(ctx: Ctx, id: string): Promise<ReconciliationView> {
  requireScope(ctx, 'admin');
  const row = await reader(ctx)
    .selectFrom('stripe_reconciliations')
    .selectAll()
    .where('environment', '=', ctx.environment)
    .where('id', '=', id)
    .executeTakeFirst();
  if (!row) throw new NotFound('reconciliation', id);
  return viewOf(row);
}
