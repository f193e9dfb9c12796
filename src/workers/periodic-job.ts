/**
 * One piece of background work run every interval in the worker role: with Redis, a BullMQ job
 * scheduler fires one run on one of the workers (concurrency 1, so runs never overlap, and several
 * worker processes share the work); without Redis, a timer in this process. The subscription
 * scheduler, the Stripe usage reporter and the Stripe reconciliation all run this way.
 */
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../config.ts';
import type { Logger } from '../platform/logger.ts';
import { bullPrefix, redisClient, redisConfigured } from '../platform/redis.ts';

export interface PeriodicJobOptions {
  /** The BullMQ queue, and the job scheduler's id within it. */
  queue: string;
  schedulerId: string;
  /** The job's name in the queue. */
  jobName: string;
  intervalMs: number;
  /** Without Redis, how long after start the first run comes (with Redis, BullMQ decides). */
  firstRunMs: number;
  /** Words for the log lines: `${label} failed`, `${label} worker error`. */
  label: string;
  /** Without Redis, whether the timer may keep the process alive. */
  unref?: boolean;
}

export class PeriodicJob {
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<unknown> | null = null;
  private running = false;
  private queue: Queue | null = null;
  private worker: Worker | null = null;
  private connections: Redis[] = [];

  constructor(
    private readonly config: Pick<Config, 'redisUrl' | 'redisClusterNodes' | 'redisPrefix'>,
    private readonly logger: Logger,
    private readonly options: PeriodicJobOptions,
    private readonly run: () => Promise<unknown>,
  ) {}

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    if (redisConfigured(this.config)) await this.startQueue();
    else this.schedule(this.options.firstRunMs);
  }

  /** Sets the job scheduler up again (Redis lost its data, and the scheduler with it). */
  async renew(): Promise<void> {
    await this.queue?.upsertJobScheduler(
      this.options.schedulerId,
      { every: this.options.intervalMs },
      { name: this.options.jobName, opts: { removeOnComplete: true, removeOnFail: 100 } },
    );
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.current;
    await this.worker?.close();
    await this.queue?.close();
    for (const connection of this.connections) connection.disconnect();
    this.worker = null;
    this.queue = null;
    this.connections = [];
  }

  private schedule(delay: number): void {
    this.timer = setTimeout(() => {
      this.current = this.run()
        .catch((err) => this.logger.error({ err }, `${this.options.label} failed`))
        .finally(() => {
          this.current = null;
          if (this.running) this.schedule(this.options.intervalMs);
        });
    }, delay);
    if (this.options.unref) this.timer.unref();
  }

  /** BullMQ wants connections of its own that retry forever (`maxRetriesPerRequest: null`). */
  private async startQueue(): Promise<void> {
    // BullMQ joins its prefix and the queue name with ':' and refuses ':' in names.
    const prefix = bullPrefix(this.config, this.config.redisPrefix.replace(/:+$/, '') || 'tessera');
    const connect = () => {
      const connection = redisClient(this.config, { maxRetriesPerRequest: null });
      this.connections.push(connection);
      return connection;
    };
    const { queue, label } = this.options;
    this.queue = new Queue(queue, { connection: connect(), prefix });
    await this.renew();
    this.worker = new Worker(queue, async () => this.run(), {
      connection: connect(),
      prefix,
      concurrency: 1,
    });
    this.worker.on('error', (err) => this.logger.error({ err }, `${label} worker error`));
    this.worker.on('failed', (_job, err) => this.logger.error({ err }, `${label} job failed`));
  }
}
