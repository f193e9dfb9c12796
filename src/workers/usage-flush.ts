/**
 * Background work of the metering slice. With Redis: a BullMQ queue whose job scheduler starts a
 * metering job every 5 s; the job flushes (stream -> ledger) every 250 ms and runs the reservation
 * sweeper every 2 s until its time is up, then the next job takes over. Any number of worker
 * processes may share the queue: each job runs once, on one of them. One job per 5 s instead of one
 * per flush keeps an idle worker nearly idle (a BullMQ job costs several Redis round trips and
 * scripts), while events still reach the ledger within about 250 ms. Without Redis: the sweeper
 * runs on a timer in process (the Postgres store writes its ledger rows itself).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Queue, Worker } from 'bullmq';
import type { Config } from '../config.ts';
import type { Metering } from '../modules/metering/metering.ts';
import type { Logger } from '../platform/logger.ts';
import { bullPrefix, redisClient, redisConfigured } from '../platform/redis.ts';
import { unavailableDependency } from '../platform/unavailable.ts';

const FLUSH_EVERY_MS = 250;
const SWEEP_EVERY_MS = 2_000;
/** How long one metering job runs before it hands over to the next (the scheduler's period). */
const JOB_MS = 5_000;
/** A flush hands the loop back after this long even if events keep coming. */
const FLUSH_BUDGET_MS = 5_000;

export interface UsageWorkers {
  /** Sets the job scheduler up again (Redis lost its data, and the scheduler with it). */
  renew(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * One metering job: flush every `FLUSH_EVERY_MS` and sweep every `SWEEP_EVERY_MS` for `JOB_MS`
 * (or until `signal` aborts, at shutdown). A failed round is logged and the next one tries again
 * (what was not flushed stays in the streams). Returns how many events reached the ledger.
 */
/** The job's sense of time: the real one, or a test's that moves only when the job waits. */
export interface JobTime {
  now(): number;
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

const realTime: JobTime = {
  now: () => Date.now(),
  sleep: async (ms, signal) => {
    await sleep(ms, undefined, { signal });
  },
};

export async function runMeteringJob(
  metering: Pick<Metering, 'flush' | 'sweep'>,
  signal: AbortSignal,
  logger: Logger,
  timing = { jobMs: JOB_MS, flushEveryMs: FLUSH_EVERY_MS, sweepEveryMs: SWEEP_EVERY_MS },
  time: JobTime = realTime,
): Promise<number> {
  const started = time.now();
  let flushed = 0;
  let awayLogged = false;
  let lastSweep = Number.NEGATIVE_INFINITY;
  for (;;) {
    try {
      flushed += await metering.flush({ budgetMs: FLUSH_BUDGET_MS, full: false });
    } catch (err) {
      // PostgreSQL or Redis away: said once per job (every 5 s), not at every round.
      const away = unavailableDependency(err);
      if (away === null) logger.error({ err }, 'usage flush failed');
      else if (!awayLogged) logger.warn({ err }, `usage flush waiting: ${away} unreachable; retrying`);
      awayLogged ||= away !== null;
    }
    if (time.now() - lastSweep >= timing.sweepEveryMs) {
      lastSweep = time.now();
      await metering.sweep().catch((err: unknown) => logger.error({ err }, 'reservation sweep failed'));
    }
    if (signal.aborted || time.now() - started + timing.flushEveryMs >= timing.jobMs) return flushed;
    try {
      await time.sleep(timing.flushEveryMs, signal);
    } catch {
      return flushed; // aborted: shutting down
    }
  }
}

export async function startUsageWorkers(
  metering: Metering,
  config: Config,
  logger: Logger,
): Promise<UsageWorkers> {
  if (!redisConfigured(config)) {
    const timer = setInterval(() => {
      metering.sweep().catch((err: unknown) => logger.error({ err }, 'reservation sweep failed'));
    }, SWEEP_EVERY_MS);
    timer.unref();
    return { renew: async () => {}, stop: async () => clearInterval(timer) };
  }
  const connection = redisClient(config, { maxRetriesPerRequest: null });
  const prefix = bullPrefix(config, `${config.redisPrefix}bull`);
  const queue = new Queue('usage', { connection, prefix });
  const template = { opts: { removeOnComplete: true, removeOnFail: 100 } };
  const schedule = () =>
    queue.upsertJobScheduler('usage-flush', { every: JOB_MS }, { name: 'flush', ...template });
  await schedule();
  // Earlier versions scheduled the sweep as a job of its own; the flush job runs it now.
  await queue.removeJobScheduler('usage-sweep');
  const stopping = new AbortController();
  const worker = new Worker(
    'usage',
    async (job) => {
      if (job.name === 'flush') return runMeteringJob(metering, stopping.signal, logger);
      // A job an earlier version scheduled before it was upgraded.
      if (job.name === 'sweep') return metering.sweep();
      return null;
    },
    { connection, prefix, concurrency: 1 },
  );
  worker.on('failed', (job, err) => logger.error({ err, job: job?.name }, 'usage job failed'));
  worker.on('error', (err) => logger.error({ err }, 'usage worker error'));
  return {
    async renew() {
      await schedule();
    },
    async stop() {
      stopping.abort();
      await worker.close();
      await queue.close();
      connection.disconnect();
    },
  };
}
