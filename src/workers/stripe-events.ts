/**
 * Processing of stored Stripe events. With Redis: a BullMQ queue `stripe-events` (under the
 * deployment's prefix) whose jobs carry `{environment, id}`, with `maxAttempts` attempts and
 * exponential backoff; a sweep every `sweepMs` enqueues stored events whose message was lost
 * (Redis down at intake, a claim that lapsed). Without Redis: a loop in process picks due events
 * from the table every `pollMs` (at once when poked), the retry delays read from the injected
 * clock. Either way the row decides: a job for an event that is not waiting does nothing.
 */
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { Counter } from 'prom-client';
import {
  DEFAULT_PROCESSING,
  dueStripeEvents,
  type ProcessingPolicy,
  type ProcessResult,
  processStripeEvent,
} from '../modules/billing/events.ts';
import type { StripeEventQueue } from '../modules/billing/intake.ts';
import type { AppDeps } from '../platform/context.ts';
import { bullPrefix, redisClient, redisConfigured } from '../platform/redis.ts';

const QUEUE = 'stripe-events';
const BATCH = 100;

export interface StripeEventWorkerOptions extends Partial<ProcessingPolicy> {
  /** In-process: how often the table is looked at (default 1 s). */
  pollMs?: number;
  /** With Redis: how often stranded events are enqueued again (default 30 s). */
  sweepMs?: number;
}

interface Job {
  environment: string;
  id: string;
}

export class StripeEventWorker implements StripeEventQueue {
  private readonly policy: ProcessingPolicy;
  private readonly pollMs: number;
  private readonly sweepMs: number;
  private queue: Queue<Job> | null = null;
  private worker: Worker<Job> | null = null;
  private connections: Redis[] = [];
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private current: Promise<unknown> | null = null;
  private pokedWhileRunning = false;

  /** `deps` is read when first needed: the runtime builds the worker before it builds the deps. */
  constructor(
    private readonly deps: () => AppDeps,
    options: StripeEventWorkerOptions = {},
  ) {
    const { pollMs, sweepMs, ...policy } = options;
    this.policy = { ...DEFAULT_PROCESSING, ...policy };
    this.pollMs = pollMs ?? 1_000;
    this.sweepMs = sweepMs ?? 30_000;
  }

  /** With Redis, the producer side (every API node enqueues); without, nothing to open. */
  async open(): Promise<void> {
    const { config } = this.deps();
    if (!redisConfigured(config) || this.queue) return;
    // Fails fast while Redis is away (the webhook is answered at once; the sweep enqueues it later)
    // instead of waiting for it as BullMQ's own connections do.
    const producer = redisClient(config, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      commandTimeout: 2_000,
    });
    producer.on('error', () => {}); // reconnects on its own; a failed enqueue is logged where it happens
    this.connections.push(producer);
    this.queue = new Queue<Job>(QUEUE, { connection: producer, prefix: this.prefix });
    this.queue.on('error', (err) => this.deps().logger.debug({ err }, 'Stripe event queue error'));
  }

  async enqueue(environment: string, id: string): Promise<void> {
    if (this.queue) {
      await this.queue.add(
        'apply',
        { environment, id },
        {
          attempts: this.policy.maxAttempts,
          backoff: { type: 'exponential', delay: this.policy.backoffMs },
          removeOnComplete: true,
          removeOnFail: 1000,
        },
      );
      return;
    }
    this.poke();
  }

  /** Starts processing in this process (the worker role). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const { config, logger } = this.deps();
    if (!redisConfigured(config)) {
      this.schedule(0);
      return;
    }
    await this.open();
    this.worker = new Worker<Job>(
      QUEUE,
      async (job) => {
        const outcome = await this.process(job.data.environment, job.data.id);
        // BullMQ retries with its backoff; the row already says when and how often.
        if (outcome.result === 'retry') throw new Error(outcome.error);
        return outcome.result;
      },
      { connection: this.connect(), prefix: this.prefix, concurrency: 4 },
    );
    this.worker.on('error', (err) => logger.error({ err }, 'Stripe event worker error'));
    this.timer = setInterval(() => {
      this.current = this.sweep().catch((err: unknown) => logger.error({ err }, 'Stripe event sweep failed'));
    }, this.sweepMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) {
      clearTimeout(this.timer);
      clearInterval(this.timer);
    }
    this.timer = null;
    await this.current;
    await this.worker?.close();
    await this.queue?.close();
    for (const connection of this.connections) connection.disconnect();
    this.worker = null;
    this.queue = null;
    this.connections = [];
  }

  /** One in-process pass: every event due by the clock's `now`, until none is left. Returns how many were tried. */
  async runDue(): Promise<number> {
    let tried = 0;
    for (let round = 0; round < 100; round++) {
      const due = await dueStripeEvents(this.deps(), this.deps().clock.now(), BATCH);
      for (const { environment, id } of due) {
        await this.process(environment, id);
        tried += 1;
      }
      if (due.length < BATCH) break;
    }
    return tried;
  }

  /** With Redis: enqueues stored events that are overdue by a sweep period (their message was lost). */
  async sweep(): Promise<number> {
    const deps = this.deps();
    const overdue = new Date(deps.clock.now().getTime() - this.sweepMs);
    const due = await dueStripeEvents(deps, overdue, BATCH);
    for (const { environment, id } of due) await this.enqueue(environment, id);
    if (due.length > 0) deps.logger.info({ events: due.length }, 'enqueued stranded Stripe events again');
    return due.length;
  }

  private async process(environment: string, id: string): Promise<ProcessResult> {
    const deps = this.deps();
    const outcome = await processStripeEvent(deps, environment, id, this.policy);
    if (outcome.result !== 'skipped') this.counter().inc({ outcome: outcome.result });
    return outcome;
  }

  private counter(): Counter<'outcome'> {
    const { registry } = this.deps().metrics;
    const name = 'tessera_stripe_events_processed_total';
    return (
      (registry.getSingleMetric(name) as Counter<'outcome'> | undefined) ??
      new Counter({
        name,
        help: 'Stripe event processing attempts by outcome (applied, ignored, retry, failed)',
        labelNames: ['outcome'] as const,
        registers: [registry],
      })
    );
  }

  private poke(): void {
    if (!this.running) return;
    if (this.current) {
      this.pokedWhileRunning = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.schedule(0);
  }

  private schedule(delay: number): void {
    this.timer = setTimeout(() => {
      this.timer = null;
      this.current = this.runDue()
        .catch((err: unknown) => this.deps().logger.error({ err }, 'Stripe event processing failed'))
        .finally(() => {
          this.current = null;
          const again = this.pokedWhileRunning;
          this.pokedWhileRunning = false;
          if (this.running) this.schedule(again ? 0 : this.pollMs);
        });
    }, delay);
    this.timer.unref();
  }

  /** BullMQ joins its prefix and the queue name with ':' and refuses ':' in names. */
  private get prefix(): string {
    const { config } = this.deps();
    return bullPrefix(config, config.redisPrefix.replace(/:+$/, '') || 'tessera');
  }

  /** BullMQ wants connections of its own that retry forever (`maxRetriesPerRequest: null`). */
  private connect(): Redis {
    const connection = redisClient(this.deps().config, { maxRetriesPerRequest: null });
    this.connections.push(connection);
    return connection;
  }
}
