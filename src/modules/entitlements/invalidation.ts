import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { CommitListener } from '../../platform/context.ts';
import type { Logger } from '../../platform/logger.ts';
import type { OutboxDispatcher } from '../../platform/outbox.ts';
import type { SnapshotCache } from './cache.ts';

interface Message {
  origin: string;
  environment: string;
  customers?: string[];
  /** Set by the durable path: the entitlement version the change produced. */
  version?: number;
  /** Set by the fast path: each customer's version after the commit, in the order of `customers`. */
  versions?: number[];
  all?: boolean;
}

/** Topics after which every cached snapshot of the environment is stale. */
const ENVIRONMENT_TOPICS = new Set(['catalog.changed']);

/**
 * Keeps every API node's snapshot cache in step. A commit drops the local entries at once and
 * publishes on Redis (fast path); the outbox handler publishes again (the path that survives a
 * crash between commit and publish). Receiving the same invalidation twice is harmless.
 */
export class InvalidationBus {
  private readonly origin = randomUUID();
  private subscriber: Redis | null = null;

  constructor(
    private readonly cache: SnapshotCache,
    private readonly redis: Redis | null,
    private readonly channel: string,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    if (!this.redis) return;
    this.subscriber = this.redis.duplicate();
    this.subscriber.on('message', (_channel: string, raw: string) => this.receive(raw));
    // Reconnects and resubscribes on its own. Messages published while it was away are lost, and
    // snapshots cached meanwhile may be stale: the cache starts afresh when it is back.
    this.subscriber.on('error', () => {});
    let connected = false;
    this.subscriber.on('ready', () => {
      if (connected) this.cache.clear();
      connected = true;
    });
    await this.subscriber.subscribe(this.channel);
  }

  async stop(): Promise<void> {
    if (this.subscriber) {
      this.subscriber.disconnect();
      this.subscriber = null;
    }
  }

  readonly onCommit: CommitListener = ({ environment, customerIds, topics, versions }) => {
    const all = topics.some((t) => ENVIRONMENT_TOPICS.has(t));
    const message: Message = { origin: this.origin, environment, customers: customerIds, all };
    if (versions.size > 0) message.versions = customerIds.map((id) => versions.get(id) ?? 0);
    this.apply(message);
    if (all || customerIds.length > 0) void this.publish(message);
  };

  /** Outbox handlers: the durable path. */
  register(dispatcher: OutboxDispatcher): void {
    dispatcher.on('customer.entitlements_changed', async (event) => {
      if (!event.customerId) return;
      const version = typeof event.payload.version === 'number' ? event.payload.version : undefined;
      const message: Message = {
        origin: this.origin,
        environment: event.environment,
        customers: [event.customerId],
        ...(version !== undefined ? { version } : {}),
      };
      this.apply(message);
      await this.publish(message, true);
    });
    for (const topic of ENVIRONMENT_TOPICS) {
      dispatcher.on(topic, async (event) => {
        const message = { origin: this.origin, environment: event.environment, all: true };
        this.apply(message);
        await this.publish(message, true);
      });
    }
  }

  private apply(message: Message): void {
    if (message.all) this.cache.invalidateEnvironment(message.environment);
    // With a version (the durable path), a cached snapshot that already holds the change is kept:
    // the commit's own invalidation dropped the older one and it has been reloaded since.
    // A version of 0 (a customer the change did not find) says nothing: the entry is dropped.
    const customers = message.customers ?? [];
    for (let i = 0; i < customers.length; i++) {
      const version = message.version ?? message.versions?.[i];
      this.cache.invalidateCustomer(message.environment, customers[i]!, version ? version : undefined);
    }
  }

  private receive(raw: string): void {
    try {
      const message = JSON.parse(raw) as Message;
      if (message.origin !== this.origin) this.apply(message);
    } catch (err) {
      this.logger.warn({ err }, 'ignoring a malformed invalidation message');
    }
  }

  private async publish(message: Message, mustSucceed = false): Promise<void> {
    if (!this.redis) return;
    try {
      await this.redis.publish(this.channel, JSON.stringify(message));
    } catch (err) {
      // The outbox path rethrows so the dispatcher retries; the fast path only logs.
      if (mustSucceed) throw err;
      this.logger.warn({ err }, 'invalidation publish failed; the outbox will retry');
    }
  }
}
