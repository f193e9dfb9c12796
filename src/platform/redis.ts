import { type ChainableCommander, Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Config } from '../config.ts';
import { slotOfKey } from './redis-slots.ts';

/** Where Redis is: one server (REDIS_URL) or a Redis Cluster's seed nodes (REDIS_CLUSTER_NODES). */
export type RedisEndpoint = Pick<Config, 'redisUrl' | 'redisClusterNodes'>;

export function redisConfigured(endpoint: RedisEndpoint): boolean {
  return endpoint.redisUrl !== undefined || (endpoint.redisClusterNodes?.length ?? 0) > 0;
}

/**
 * A client of the configured Redis. For a cluster it is ioredis's Cluster client, typed as `Redis`:
 * it answers the same commands, sends each to the node serving its key's slot, and follows the
 * cluster when slots move. The few places that must act differently on a cluster (one slot per
 * multi-key command, script call or pipeline) look at `isCluster`.
 */
export function redisClient(endpoint: RedisEndpoint, options: RedisOptions = {}): Redis {
  const nodes = endpoint.redisClusterNodes;
  if (nodes && nodes.length > 0) {
    const { enableOfflineQueue, enableAutoPipelining, lazyConnect, ...perNode } = options;
    const cluster = new Cluster(
      nodes.map((node) => {
        const at = node.lastIndexOf(':');
        return { host: node.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(node.slice(at + 1)) };
      }),
      {
        redisOptions: perNode,
        ...(enableOfflineQueue !== undefined ? { enableOfflineQueue } : {}),
        ...(enableAutoPipelining !== undefined ? { enableAutoPipelining } : {}),
        ...(lazyConnect !== undefined ? { lazyConnect } : {}),
      },
    );
    return cluster as unknown as Redis;
  }
  if (!endpoint.redisUrl) throw new Error('no Redis configured (REDIS_URL or REDIS_CLUSTER_NODES)');
  return new Redis(endpoint.redisUrl, options);
}

/**
 * BullMQ's key prefix. On a cluster it is a hash tag (`{tessera}`), so each queue's keys share a
 * slot, as BullMQ's scripts need; on a single Redis it stays as it was, so existing queues keep
 * their keys.
 */
export function bullPrefix(endpoint: RedisEndpoint, prefix: string): string {
  return (endpoint.redisClusterNodes?.length ?? 0) > 0 ? `{${prefix}}` : prefix;
}

/** One shared command connection; subscribers open their own (a subscribed connection cannot run commands). */
export function connectRedis(endpoint: string | RedisEndpoint, options: { lazy?: boolean } = {}): Redis {
  return redisClient(
    typeof endpoint === 'string' ? { redisUrl: endpoint, redisClusterNodes: undefined } : endpoint,
    {
      lazyConnect: options.lazy ?? false,
      maxRetriesPerRequest: 2,
      // No auto-pipelining: the hot paths already send one script call per turn of the event loop
      // (TickBatcher) and the flusher builds its own pipelines, so it only added a pipeline object
      // per command. Turning it off took batched usage events from 14,200-15,400 to 18,000-18,500
      // a second in alternating runs (API 38 -> 31 µs and flusher 18 -> 13 µs of CPU per event;
      // docs/benchmarks.md).
      enableAutoPipelining: false,
      // Queued while it first connects; `failFastWhenDisconnected` turns the queue off once started.
      enableOfflineQueue: true,
      connectTimeout: 5_000,
    },
  );
}

/**
 * Commands on many keys sent as pipelines: one pipeline on a single Redis; on a cluster, where a
 * pipeline must stay on one node, one per node serving the keys' slots (by the client's slot map;
 * a slot not yet known gets a pipeline of its own). `exec` answers in the order the commands
 * were added.
 */
export class KeyedPipelines {
  private readonly groups = new Map<string, { pipeline: ChainableCommander; at: number[] }>();
  private added = 0;

  constructor(private readonly redis: Redis) {}

  /** Adds one command on `key` (`command` must add exactly one to the pipeline it is given). */
  add(key: string, command: (pipeline: ChainableCommander) => unknown): void {
    const group = this.groupOf(key);
    command(group.pipeline);
    group.at.push(this.added);
    this.added += 1;
  }

  get length(): number {
    return this.added;
  }

  async exec(): Promise<Array<[Error | null, unknown]>> {
    const out: Array<[Error | null, unknown]> = new Array(this.added);
    await Promise.all(
      [...this.groups.values()].map(async ({ pipeline, at }) => {
        const results = (await pipeline.exec()) ?? [];
        at.forEach((index, i) => {
          out[index] = results[i] ?? [new Error('no reply'), null];
        });
      }),
    );
    this.groups.clear();
    this.added = 0;
    return out;
  }

  private groupOf(key: string): { pipeline: ChainableCommander; at: number[] } {
    let name = '';
    if (this.redis.isCluster) {
      const slot = slotOfKey(key);
      const nodes = (this.redis as unknown as Cluster).slots[slot];
      name = nodes && nodes.length > 0 ? nodes.join(',') : `slot:${slot}`;
    }
    let group = this.groups.get(name);
    if (!group) {
      group = { pipeline: this.redis.pipeline(), at: [] };
      this.groups.set(name, group);
    }
    return group;
  }
}

/** Every master of a cluster, or the one Redis: where a command on no key (SCRIPT LOAD) must go. */
export function redisMasters(redis: Redis): Redis[] {
  return redis.isCluster ? (redis as unknown as Cluster).nodes('master') : [redis];
}

/**
 * Once started: a command sent while the connection is down fails at once (ioredis's offline queue
 * off) instead of waiting for reconnection attempts, so a request answers 503 with Retry-After
 * (platform/unavailable.ts) within milliseconds while Redis is away, rather than hanging for tens
 * of seconds. ioredis still reconnects on its own, and commands succeed again once it has. Its
 * connection errors are expected then: they are answered, not logged per attempt. Connections made
 * with `duplicate()` before this keep their queue (a subscriber must be able to resubscribe).
 */
export function failFastWhenDisconnected(redis: Redis): void {
  redis.options.enableOfflineQueue = false;
  if (redis.listenerCount('error') === 0) redis.on('error', () => {});
}

export async function waitForRedis(redis: Redis, timeoutMs = 5_000): Promise<void> {
  const started = Date.now();
  for (;;) {
    try {
      await redis.ping();
      return;
    } catch (err) {
      if (Date.now() - started > timeoutMs) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** What Tessera reads of a Redis server's configuration (`CONFIG GET`). */
export interface RedisSettings {
  maxmemoryPolicy: string;
  appendonly: string;
  save: string;
}

/**
 * The settings of the Redis server, or null when it does not answer `CONFIG GET` (managed
 * services often rename or refuse it): then nothing can be said, and nothing is.
 */
export async function readRedisSettings(redis: Redis): Promise<RedisSettings | null> {
  try {
    const pairs = (await redis.call('CONFIG', 'GET', 'maxmemory-policy', 'appendonly', 'save')) as string[];
    const got = new Map<string, string>();
    for (let i = 0; i + 1 < pairs.length; i += 2) got.set(String(pairs[i]), String(pairs[i + 1]));
    const maxmemoryPolicy = got.get('maxmemory-policy');
    if (maxmemoryPolicy === undefined) return null;
    return { maxmemoryPolicy, appendonly: got.get('appendonly') ?? 'no', save: got.get('save') ?? '' };
  } catch {
    return null;
  }
}

/**
 * What in a Redis server's settings puts Tessera's guarantees at risk, one sentence each:
 * - any eviction policy but `noeviction`: counters, idempotency answers and holds all carry TTLs,
 *   so even the `volatile-*` policies may drop them under memory pressure, and an evicted
 *   idempotency answer or counter lets an event count twice or a quota restart;
 * - no persistence at all (no AOF, no RDB snapshots): the counters are rebuilt from the ledger
 *   after a restart, but accepted events the flusher has not yet written (normally under a
 *   second's worth) are only in Redis's stream, and a Redis restart loses them.
 */
export function redisSettingsWarnings(settings: RedisSettings): string[] {
  const warnings: string[] = [];
  if (settings.maxmemoryPolicy !== 'noeviction') {
    warnings.push(
      `Redis maxmemory-policy is ${settings.maxmemoryPolicy}: under memory pressure it may evict usage counters or idempotency answers, and events would count twice; set maxmemory-policy noeviction`,
    );
  }
  if (settings.appendonly !== 'yes' && settings.save.trim() === '') {
    warnings.push(
      'Redis keeps nothing on disk (appendonly no, no save points): a Redis restart loses accepted usage events not yet flushed to the ledger; set appendonly yes (appendfsync everysec) in production',
    );
  }
  return warnings;
}
