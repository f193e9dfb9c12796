/**
 * The scheduler writes down the time-driven subscription transitions that have come due (trial
 * ends, period rollovers, scheduled changes and cancellations at period end, grace expiry), each
 * with its audit record (actor: system) and outbox event. Decisions never depend on it: the state
 * at any instant derives from the stored timestamps and `now`. What it persists for a subscription
 * equals `stateAt(stored, now)`.
 *
 * Safe with any number of workers: each subscription is handled in its own transaction under
 * `FOR UPDATE SKIP LOCKED` (customer row, then subscription row, as every path locks them), and
 * each transition inserts its dueTransitionKey into subscription_transitions in that transaction,
 * so a transition is recorded once however often it is found. With Redis, a BullMQ job scheduler
 * fires `runOnce` every interval on one of the workers; without Redis a timer runs it in process.
 *
 * Each run also signs a checkpoint of every audit chain whose head moved and whose last checkpoint
 * is AUDIT_CHECKPOINT_SECONDS old (see modules/audit/checkpoints.ts), and deletes the
 * idempotency records that expired by `now`, in batches (platform/idempotency.ts).
 *
 * It also closes access reviews past their due date (undecided items take the campaign's default;
 * a recurring campaign opens its successor) and scans each environment for anomalies once a day
 * (modules/governance/access-reviews.ts, anomaly-scan.ts).
 */
import { sql } from 'kysely';
import { writeDueCheckpoints } from '../modules/audit/checkpoints.ts';
import { settleTimedOutRequests } from '../modules/governance/access-requests.ts';
import { closeDueReviews } from '../modules/governance/access-reviews.ts';
import { runDueAnomalyScans } from '../modules/governance/anomaly-scan.ts';
import { DEFAULT_SETTINGS } from '../modules/settings/repo.ts';
import { catchUpRow } from '../modules/subscriptions/catch-up.ts';
import type { Actor, AppDeps } from '../platform/context.ts';
import { systemContext, withTransaction } from '../platform/context.ts';
import type { Db } from '../platform/db.ts';
import { purgeExpiredIdempotencyKeys } from '../platform/idempotency.ts';
import { PeriodicJob } from './periodic-job.ts';

export const SCHEDULER_ACTOR: Actor = { type: 'system', id: null, name: 'scheduler' };
const QUEUE = 'scheduler';
const JOB_SCHEDULER_ID = 'due-subscription-transitions';

export interface SchedulerOptions {
  /** How often a run starts (default 5 s). */
  intervalMs?: number;
  /** Subscriptions looked at per round (default 200). */
  batchSize?: number;
}

export interface SchedulerRun {
  /** Subscriptions whose stored state moved or that got a new transition record. */
  updated: number;
  /** Held by another worker or a command right now: the next run takes them. */
  skipped: number;
  failed: number;
  /** Signed audit checkpoints written (environments whose chain head moved and whose checkpoint was due). */
  checkpoints: number;
  /** Idempotency records deleted because they expired by `now`. */
  idempotencyKeysPurged: number;
  /** Pending access requests whose stage timed out by `now`: denied (expired) or escalated. */
  accessRequestsSettled: number;
  /** Access reviews past their due date that were closed (their recurring successors opened). */
  accessReviewsClosed: number;
  /** Anomaly flags raised by the environments' daily scans that came due. */
  anomalyFlagsRaised: number;
}

interface Candidate {
  environment: string;
  id: string;
  customer_id: string;
}

/**
 * Subscriptions with a transition due by `now`: a scheduled start, a period or trial end, or an
 * unrecorded grace end.
 */
async function dueCandidates(db: Db, now: Date, limit: number): Promise<Candidate[]> {
  const starts = await db
    .selectFrom('subscriptions')
    .select(['environment', 'id', 'customer_id'])
    .where('status', '=', 'scheduled')
    .where('started_at', '<=', now)
    .orderBy('started_at')
    .limit(limit)
    .execute();
  const boundaries = await db
    .selectFrom('subscriptions')
    .select(['environment', 'id', 'customer_id'])
    .where('status', 'not in', ['scheduled', 'canceled', 'expired'])
    .where('current_period_end', '<=', now)
    .orderBy('current_period_end')
    .limit(limit)
    .execute();
  const graces = await sql<Candidate>`
    SELECT s.environment, s.id, s.customer_id
      FROM subscriptions s JOIN environments e ON e.id = s.environment
     WHERE s.status = 'past_due' AND s.past_due_since IS NOT NULL
       AND s.past_due_since + make_interval(secs => 86400 * coalesce(
             (e.settings->>'past_due_grace_days')::float8, ${DEFAULT_SETTINGS.past_due_grace_days})) <= ${now}
       AND NOT EXISTS (SELECT 1 FROM subscription_transitions t
                        WHERE t.environment = s.environment AND t.subscription_id = s.id
                          AND t.event = 'grace_end' AND t.due_at >= s.past_due_since)
     ORDER BY s.past_due_since
     LIMIT ${limit}`.execute(db);
  const seen = new Set<string>();
  return [...starts, ...boundaries, ...graces.rows].filter((c) => !seen.has(c.id) && !!seen.add(c.id));
}

async function catchUpCandidate(
  deps: AppDeps,
  candidate: Candidate,
): Promise<'updated' | 'unchanged' | 'skipped'> {
  const ctx = systemContext(deps, candidate.environment, SCHEDULER_ACTOR);
  return withTransaction(ctx, async (t) => {
    const customer = await t.tx
      .selectFrom('customers')
      .select('customer_id')
      .where('environment', '=', t.environment)
      .where('customer_id', '=', candidate.customer_id)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
    if (!customer) return 'skipped';
    const row = await t.tx
      .selectFrom('subscriptions')
      .selectAll()
      .where('environment', '=', t.environment)
      .where('id', '=', candidate.id)
      .forUpdate()
      .skipLocked()
      .executeTakeFirst();
    if (!row) return 'skipped';
    const { recorded, changed } = await catchUpRow(t, row);
    return recorded > 0 || changed ? 'updated' : 'unchanged';
  });
}

/**
 * One pass: persists every transition due by `now`, round after round while rounds come back full
 * and make progress. Safe to call at any time, from any number of processes.
 */
export async function runDueTransitions(
  deps: AppDeps,
  now: Date = deps.clock.now(),
  options: SchedulerOptions = {},
): Promise<SchedulerRun> {
  const batchSize = options.batchSize ?? 200;
  // Transactions take their `now` from the clock: pin it to the instant this run is for.
  const pinned: AppDeps = { ...deps, clock: { now: () => new Date(now) } };
  const run: SchedulerRun = {
    updated: 0,
    skipped: 0,
    failed: 0,
    checkpoints: 0,
    idempotencyKeysPurged: 0,
    accessRequestsSettled: 0,
    accessReviewsClosed: 0,
    anomalyFlagsRaised: 0,
  };
  for (let round = 0; round < 50; round++) {
    const candidates = await dueCandidates(deps.db, now, batchSize);
    let progress = 0;
    for (const candidate of candidates) {
      try {
        const outcome = await catchUpCandidate(pinned, candidate);
        if (outcome === 'updated') progress += 1;
        if (outcome === 'skipped') run.skipped += 1;
      } catch (err) {
        run.failed += 1;
        deps.logger.error(
          { err, subscriptionId: candidate.id },
          'scheduler could not persist due transitions',
        );
      }
    }
    run.updated += progress;
    if (candidates.length < batchSize || progress === 0) break;
  }
  if (run.updated > 0) deps.logger.info(run, 'scheduler persisted due subscription transitions');
  run.checkpoints = await writeAuditCheckpoints(deps, now);
  run.idempotencyKeysPurged = await purgeIdempotencyKeys(deps, now);
  run.accessRequestsSettled = await settleAccessRequests(pinned);
  run.accessReviewsClosed = await governanceStep(pinned, 'close due access reviews', closeDueReviews);
  run.anomalyFlagsRaised = await governanceStep(pinned, 'scan for anomalies', runDueAnomalyScans);
  return run;
}

async function governanceStep(
  deps: AppDeps,
  what: string,
  step: (deps: AppDeps, actor: Actor) => Promise<number>,
): Promise<number> {
  try {
    return await step(deps, SCHEDULER_ACTOR);
  } catch (err) {
    deps.logger.error({ err }, `scheduler could not ${what}`);
    return 0;
  }
}

async function settleAccessRequests(deps: AppDeps): Promise<number> {
  try {
    return await settleTimedOutRequests(deps, SCHEDULER_ACTOR);
  } catch (err) {
    deps.logger.error({ err }, 'scheduler could not settle timed-out access requests');
    return 0;
  }
}

async function purgeIdempotencyKeys(deps: AppDeps, now: Date): Promise<number> {
  try {
    const purged = await purgeExpiredIdempotencyKeys(deps.db, now);
    if (purged > 0) deps.logger.debug({ purged }, 'deleted expired idempotency records');
    return purged;
  } catch (err) {
    deps.logger.error({ err }, 'scheduler could not delete expired idempotency records');
    return 0;
  }
}

async function writeAuditCheckpoints(deps: AppDeps, now: Date): Promise<number> {
  try {
    const written = await writeDueCheckpoints(deps, now, deps.config.auditCheckpointSeconds);
    for (const c of written) {
      deps.logger.debug(
        { environment: c.environment, checkpoint: c.id, events: c.event_count },
        'signed audit checkpoint',
      );
    }
    return written.length;
  } catch (err) {
    deps.logger.error({ err }, 'scheduler could not write audit checkpoints');
    return 0;
  }
}

export class Scheduler {
  private readonly job: PeriodicJob;

  constructor(
    private readonly deps: AppDeps,
    private readonly options: SchedulerOptions = {},
  ) {
    this.job = new PeriodicJob(
      deps.config,
      deps.logger,
      {
        queue: QUEUE,
        schedulerId: JOB_SCHEDULER_ID,
        jobName: 'run',
        intervalMs: options.intervalMs ?? 5_000,
        firstRunMs: 0,
        label: 'scheduler run',
      },
      () => this.runOnce(),
    );
  }

  /** One pass now (tests call this with a frozen clock). */
  runOnce(now: Date = this.deps.clock.now()): Promise<SchedulerRun> {
    return runDueTransitions(this.deps, now, this.options);
  }

  start(): Promise<void> {
    return this.job.start();
  }

  /** Sets the job scheduler up again (Redis lost its data, and the scheduler with it). */
  renew(): Promise<void> {
    return this.job.renew();
  }

  stop(): Promise<void> {
    return this.job.stop();
  }
}
