import { Redis } from 'ioredis';

/** One shared command connection; subscribers open their own (a subscribed connection cannot run commands). */
export function connectRedis(url: string, options: { lazy?: boolean } = {}): Redis {
  return new Redis(url, {
    lazyConnect: options.lazy ?? false,
    maxRetriesPerRequest: 2,
    enableAutoPipelining: true,
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
