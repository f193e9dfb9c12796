import type { Redis } from 'ioredis';
import { createApp } from './app.ts';
import type { Config } from './config.ts';
import { ensureBootstrapKey } from './modules/api-keys/service.ts';
import { type Clock, systemClock } from './platform/clock.ts';
import type { AppDeps } from './platform/context.ts';
import { type Database, openDatabase } from './platform/db.ts';
import { createLogger, type Logger } from './platform/logger.ts';
import { Metrics } from './platform/metrics.ts';
import { migrateToLatest } from './platform/migrate.ts';
import { OutboxDispatcher } from './platform/outbox.ts';
import { connectRedis, waitForRedis } from './platform/redis.ts';

export interface RuntimeOptions {
  clock?: Clock;
  logger?: Logger;
  /** An already-open database (tests hand in their own). */
  database?: Database;
  /** Start the outbox dispatcher loop (and later the scheduler). Defaults to config.runWorkers. */
  workers?: boolean;
  defaultMetrics?: boolean;
}

export interface Runtime {
  deps: AppDeps;
  app: ReturnType<typeof createApp>['app'];
  resolver: ReturnType<typeof createApp>['resolver'];
  dispatcher: OutboxDispatcher;
  close(): Promise<void>;
}

/** Opens every dependency, migrates, and wires the app; the one place that does start-up IO. */
export async function startRuntime(config: Config, options: RuntimeOptions = {}): Promise<Runtime> {
  const logger = options.logger ?? createLogger(config.logLevel);
  const clock = options.clock ?? systemClock;
  const database = options.database ?? (await openDatabase(config));
  await migrateToLatest(database.db);
  if (config.adminKey) await ensureBootstrapKey(database.db, config.adminKey, clock.now());

  let redis: Redis | null = null;
  if (config.redisUrl) {
    redis = connectRedis(config.redisUrl);
    await waitForRedis(redis);
  }
  const metrics = new Metrics(options.defaultMetrics ?? false);
  const deps: AppDeps = {
    config,
    database,
    db: database.db,
    redis,
    clock,
    logger,
    metrics,
    commitListeners: [],
  };
  const dispatcher = new OutboxDispatcher(database.db, logger, metrics, { pollMs: config.outboxPollMs });
  deps.commitListeners.push(({ outboxEvents }) => {
    if (outboxEvents > 0) dispatcher.poke();
  });
  const { app, resolver } = createApp(deps);
  if (options.workers ?? config.runWorkers) dispatcher.start();

  return {
    deps,
    app,
    resolver,
    dispatcher,
    async close() {
      await dispatcher.stop();
      if (redis) redis.disconnect();
      if (!options.database) await database.close();
    },
  };
}
