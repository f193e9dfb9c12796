/**
 * Background work of the metering slice. With Redis: a BullMQ queue whose job schedulers run the
 * flusher (stream -> ledger) every 250 ms and the reservation sweeper every 2 s; any number of
 * worker processes may share the queue, each job runs once. Without Redis: the sweeper runs on a
 * timer in process (the Postgres store writes its ledger rows itself).
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { Metering } from '../modules/metering/metering.ts';
import type { Logger } from '../platform/logger.ts';

const FLUSH_EVERY_MS = 250;
const SWEEP_EVERY_MS = 2_000;
/** A flush job hands the worker back after this long even if events keep coming. */
const FLUSH_BUDGET_MS = 5_000;

export interface UsageWorkers {
  stop(): Promise<void>;
}

export async function startUsageWorkers(
  metering: Metering,
  config: Config,
  logger: Logger,
): Promise<UsageWorkers> {
  if (!config.redisUrl) {
    const timer = setInterval(() => {
      metering.sweep().catch((err: unknown) => logger.error({ err }, 'reservation sweep failed'));
    }, SWEEP_EVERY_MS);
    timer.unref();
    return { stop: async () => clearInterval(timer) };
  }
  const connection = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const prefix = `${config.redisPrefix}bull`;
  const queue = new Queue('usage', { connection, prefix });
  const template = { opts: { removeOnComplete: true, removeOnFail: 100 } };
  await queue.upsertJobScheduler('usage-flush', { every: FLUSH_EVERY_MS }, { name: 'flush', ...template });
  await queue.upsertJobScheduler('usage-sweep', { every: SWEEP_EVERY_MS }, { name: 'sweep', ...template });
  const worker = new Worker(
    'usage',
    async (job) => {
      if (job.name === 'flush') return metering.flush({ budgetMs: FLUSH_BUDGET_MS, full: false });
      if (job.name === 'sweep') return metering.sweep();
      return null;
    },
    { connection, prefix, concurrency: 1 },
  );
  worker.on('failed', (job, err) => logger.error({ err, job: job?.name }, 'usage job failed'));
  worker.on('error', (err) => logger.error({ err }, 'usage worker error'));
  return {
    async stop() {
      await worker.close();
      await queue.close();
      connection.disconnect();
    },
  };
}
