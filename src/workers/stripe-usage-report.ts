/**
 * Runs the Stripe usage reporter (modules/billing/usage-report.ts) in the worker role: with Redis,
 * a BullMQ job scheduler fires one run every interval on one of the workers (concurrency 1, so runs
 * never overlap); without Redis, a timer in process.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import {
  StripeUsageReporter,
  type UsageReportOptions,
  type UsageReportRun,
} from '../modules/billing/usage-report.ts';
import type { AppDeps } from '../platform/context.ts';

const QUEUE = 'stripe-usage';
const JOB_SCHEDULER_ID = 'stripe-usage-report';

export class StripeUsageReportJob {
  readonly reporter: StripeUsageReporter;
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<unknown> | null = null;
  private running = false;
  private queue: Queue | null = null;
  private worker: Worker | null = null;
  private connections: Redis[] = [];

  constructor(
    private readonly deps: AppDeps,
    private readonly intervalMs = 10_000,
    options: UsageReportOptions = {},
  ) {
    this.reporter = new StripeUsageReporter(deps, options);
  }

  runOnce(): Promise<UsageReportRun> {
    return this.reporter.runOnce();
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const url = this.deps.config.redisUrl;
    if (url) await this.startQueue(url);
    else this.schedule(0);
  }

  /** Sets the job scheduler up again (Redis lost its data, and the scheduler with it). */
  async renew(): Promise<void> {
    await this.queue?.upsertJobScheduler(
      JOB_SCHEDULER_ID,
      { every: this.intervalMs },
      { name: 'report', opts: { removeOnComplete: true, removeOnFail: 100 } },
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
      this.current = this.runOnce()
        .catch((err) => this.deps.logger.error({ err }, 'Stripe usage report failed'))
        .finally(() => {
          this.current = null;
          if (this.running) this.schedule(this.intervalMs);
        });
    }, delay);
  }

  private async startQueue(url: string): Promise<void> {
    const prefix = this.deps.config.redisPrefix.replace(/:+$/, '') || 'tessera';
    const connect = () => {
      const connection = new Redis(url, { maxRetriesPerRequest: null });
      this.connections.push(connection);
      return connection;
    };
    this.queue = new Queue(QUEUE, { connection: connect(), prefix });
    await this.renew();
    this.worker = new Worker(QUEUE, async () => this.runOnce(), {
      connection: connect(),
      prefix,
      concurrency: 1,
    });
    this.worker.on('error', (err) => this.deps.logger.error({ err }, 'Stripe usage worker error'));
    this.worker.on('failed', (_job, err) => this.deps.logger.error({ err }, 'Stripe usage job failed'));
  }
}
