import { Redis } from 'ioredis';

/** One shared command connection; subscribers open their own (a subscribed connection cannot run commands). */
export function connectRedis(url: string, options: { lazy?: boolean } = {}): Redis {
  return new Redis(url, {
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
  });
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
