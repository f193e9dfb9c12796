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
    // Fail fast at start-up rather than queue commands forever against a Redis that is not there.
    enableOfflineQueue: true,
    connectTimeout: 5_000,
  });
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
