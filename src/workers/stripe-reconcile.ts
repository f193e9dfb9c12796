/**
 * Runs the Stripe reconciliation (modules/billing/reconcile.ts) in the worker role for every
 * environment with a Stripe secret key, every `STRIPE_RECONCILE_HOURS` (0: never): with Redis, a
 * BullMQ job scheduler fires one run on one of the workers (concurrency 1, so runs never overlap);
 * without Redis, a timer in process whose first run is one interval after start.
 */
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { executeReconciliation, type ReconciliationView } from '../modules/billing/reconcile.ts';
import { type AppDeps, systemContext } from '../platform/context.ts';

const QUEUE = 'stripe-reconcile';
const JOB_SCHEDULER_ID = 'stripe-reconcile';

export class StripeReconcileJob {
  private timer: NodeJS.Timeout | null = null;
  private current: Promise<unknown> | null = null;
  private running = false;
  private queue: Queue | null = null;
  private worker: Worker | null = null;
  private connections: Redis[] = [];
  private readonly intervalMs: number;

  constructor(
    private readonly deps: AppDeps,
    intervalMs = deps.config.stripeReconcileHours * 3_600_000,
  ) {
    this.intervalMs = intervalMs;
  }

  /** One run in each environment connected to Stripe; a failed run is recorded and logged. */
  async runOnce(): Promise<ReconciliationView[]> {
    const environments = await this.deps.db
      .selectFrom('stripe_settings')
      .select('environment')
      .where('secret_key', 'is not', null)
      .orderBy('environment')
      .execute();
    const runs: ReconciliationView[] = [];
    for (const { environment } of environments) {
      const ctx = systemContext(this.deps, environment, { type: 'system', id: null, name: 'reconcile job' });
      try {
        const { view, failure } = await executeReconciliation(ctx, {});
        if (failure) this.deps.logger.error({ err: failure, environment }, 'Stripe reconciliation failed');
        runs.push(view);
      } catch (err) {
        this.deps.logger.error({ err, environment }, 'Stripe reconciliation could not start');
      }
    }
    return runs;
  }

  async start(): Promise<void> {
    if (this.running || this.intervalMs <= 0) return;
    this.running = true;
    const url = this.deps.config.redisUrl;
    if (url) await this.startQueue(url);
    else this.schedule(this.intervalMs);
  }

  /** Sets the job scheduler up again (Redis lost its data, and the scheduler with it). */
  async renew(): Promise<void> {
    await this.queue?.upsertJobScheduler(
      JOB_SCHEDULER_ID,
      { every: this.intervalMs },
      { name: 'reconcile', opts: { removeOnComplete: true, removeOnFail: 100 } },
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
        .catch((err) => this.deps.logger.error({ err }, 'Stripe reconciliation failed'))
        .finally(() => {
          this.current = null;
          if (this.running) this.schedule(this.intervalMs);
        });
    }, delay);
    this.timer.unref();
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
    this.worker.on('error', (err) => this.deps.logger.error({ err }, 'Stripe reconcile worker error'));
    this.worker.on('failed', (_job, err) => this.deps.logger.error({ err }, 'Stripe reconcile job failed'));
  }
}
