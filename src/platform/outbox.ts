import { sql } from 'kysely';
import type { Db, Tx } from './db.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';

export interface OutboxEvent {
  topic: string;
  customerId?: string | null;
  payload: Record<string, unknown>;
}

export interface DispatchedEvent {
  id: number;
  environment: string;
  customerId: string | null;
  topic: string;
  payload: Record<string, unknown>;
  createdAt: Date;
  attempt: number;
}

/**
 * What the events of one dispatch round share: a handler that reads the same thing for each event
 * (the environment's webhook endpoints, say) reads it once a round with `memo`.
 */
export interface DispatchRound {
  memo<T>(key: string, load: () => Promise<T>): Promise<T>;
}

export type OutboxHandler = (event: DispatchedEvent, round: DispatchRound) => Promise<void>;

function newRound(): DispatchRound {
  const memos = new Map<string, Promise<unknown>>();
  return {
    memo<T>(key: string, load: () => Promise<T>): Promise<T> {
      let found = memos.get(key) as Promise<T> | undefined;
      if (!found) {
        found = load();
        memos.set(key, found);
        // A failed read is not shared: the next event of the round reads again.
        found.catch(() => memos.delete(key));
      }
      return found;
    },
  };
}

export async function writeOutboxEvents(tx: Tx, environment: string, events: OutboxEvent[]): Promise<void> {
  if (events.length === 0) return;
  await tx
    .insertInto('outbox')
    .values(
      events.map((e) => ({
        environment,
        customer_id: e.customerId ?? null,
        topic: e.topic,
        payload: JSON.stringify(e.payload),
      })),
    )
    .execute();
}

/** Seconds to wait before retry n (1-based): 1, 2, 4 ... capped at 5 minutes, with jitter. */
export function backoffSeconds(attempt: number): number {
  const base = Math.min(300, 2 ** Math.max(0, attempt - 1));
  return base * (0.8 + Math.random() * 0.4);
}

const LEASE_SECONDS = 30;

/**
 * Hands outbox events to registered handlers at least once, in order per customer, with retry and
 * backoff. Any number of dispatchers may run (one per worker process): each claims only the
 * oldest pending event of a customer, under a lease, so a customer's events never overtake each
 * other and two dispatchers never hold the same event.
 */
export class OutboxDispatcher {
  private readonly handlers = new Map<string, OutboxHandler[]>();
  private running = false;
  private wake: (() => void) | null = null;
  private loop: Promise<void> | null = null;
  private lastCleanup = 0;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly options: { pollMs: number; batchSize?: number; retentionDays?: number },
  ) {}

  /** Registers a handler for a topic, or for every topic with '*'. Handlers must be idempotent. */
  on(topic: string, handler: OutboxHandler): void {
    this.handlers.set(topic, [...(this.handlers.get(topic) ?? []), handler]);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.poke();
    await this.loop;
    this.loop = null;
  }

  /** Wakes the loop now instead of at the next poll (called after a commit that wrote events). */
  poke(): void {
    this.wake?.();
  }

  /** Claims and dispatches one round of events; returns how many were handled successfully. */
  async runOnce(): Promise<number> {
    const claimed = await sql<{
      id: number;
      environment: string;
      customer_id: string | null;
      topic: string;
      payload: Record<string, unknown>;
      created_at: Date;
      attempts: number;
    }>`
      WITH heads AS (
        SELECT DISTINCT ON (environment, coalesce(customer_id, '')) id, next_attempt_at
        FROM outbox WHERE dispatched_at IS NULL
        ORDER BY environment, coalesce(customer_id, ''), id
      )
      UPDATE outbox o
         SET next_attempt_at = now() + make_interval(secs => ${LEASE_SECONDS}), attempts = o.attempts + 1
        FROM heads h
       WHERE o.id = h.id AND h.next_attempt_at <= now() AND o.next_attempt_at <= now() AND o.dispatched_at IS NULL
         AND o.id IN (SELECT id FROM heads WHERE next_attempt_at <= now() ORDER BY id LIMIT ${this.options.batchSize ?? 200})
      RETURNING o.id, o.environment, o.customer_id, o.topic, o.payload, o.created_at, o.attempts`.execute(
      this.db,
    );
    const round = newRound();
    const handled: Array<{ id: number; topic: string }> = [];
    await Promise.all(
      claimed.rows.map(async (row) => {
        const event: DispatchedEvent = {
          id: row.id,
          environment: row.environment,
          customerId: row.customer_id,
          topic: row.topic,
          payload: row.payload,
          createdAt: row.created_at,
          attempt: row.attempts,
        };
        try {
          for (const handler of [
            ...(this.handlers.get(row.topic) ?? []),
            ...(this.handlers.get('*') ?? []),
          ]) {
            await handler(event, round);
          }
          handled.push({ id: row.id, topic: row.topic });
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          this.logger.warn(
            { err, outboxId: row.id, topic: row.topic, attempt: row.attempts },
            'outbox handler failed',
          );
          this.metrics.outboxDispatched.inc({ topic: row.topic, outcome: 'error' });
          await this.db
            .updateTable('outbox')
            .set({
              next_attempt_at: sql<Date>`now() + make_interval(secs => ${backoffSeconds(row.attempts)})`,
              last_error: message.slice(0, 2000),
            })
            .where('id', '=', row.id)
            .execute();
        }
      }),
    );
    // The round's handled events are marked in one statement. Should it fail (or the process stop
    // first), their leases run out and they are handed out again: handlers are idempotent.
    if (handled.length > 0) {
      await this.db
        .updateTable('outbox')
        .set({ dispatched_at: sql<Date>`now()`, last_error: null })
        .where(
          'id',
          'in',
          handled.map((h) => h.id),
        )
        .execute();
      for (const h of handled) this.metrics.outboxDispatched.inc({ topic: h.topic, outcome: 'ok' });
    }
    const done = handled.length;
    return claimed.rows.length === 0 ? -1 : done;
  }

  /** Dispatches until nothing is due (tests use this to make side effects happen now). */
  async drain(maxRounds = 100): Promise<void> {
    for (let i = 0; i < maxRounds; i++) {
      if ((await this.runOnce()) === -1) return;
    }
  }

  private async run(): Promise<void> {
    while (this.running) {
      let found = false;
      try {
        found = (await this.runOnce()) !== -1;
        await this.cleanup();
      } catch (err) {
        this.logger.error({ err }, 'outbox dispatch round failed');
      }
      if (!found && this.running) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.options.pollMs);
          this.wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wake = null;
      }
    }
  }

  private async cleanup(): Promise<void> {
    if (Date.now() - this.lastCleanup < 3_600_000) return;
    this.lastCleanup = Date.now();
    await this.db
      .deleteFrom('outbox')
      .where(
        'dispatched_at',
        '<',
        sql<Date>`now() - make_interval(days => ${this.options.retentionDays ?? 7})`,
      )
      .execute();
  }
}
