import type { Redis } from 'ioredis';
import { createApp } from './app.ts';
import type { Config } from './config.ts';
import { ensureBootstrapKey } from './modules/api-keys/service.ts';
import { stripeLifecycleGateway } from './modules/billing/lifecycle-push.ts';
import { SnapshotCache } from './modules/entitlements/cache.ts';
import { CatalogCache } from './modules/entitlements/catalog-cache.ts';
import { DecisionEngine } from './modules/entitlements/engine.ts';
import { InvalidationBus } from './modules/entitlements/invalidation.ts';
import { Metering } from './modules/metering/metering.ts';
import { endCustomerSubscriptions } from './modules/subscriptions/service.ts';
import { fanOutWebhooks, WebhookDeliveryWorker } from './modules/webhooks/service.ts';
import { type Clock, systemClock } from './platform/clock.ts';
import type { AppDeps, PlatformDeps } from './platform/context.ts';
import { type Database, openDatabase, openReplica } from './platform/db.ts';
import { createLogger, type Logger } from './platform/logger.ts';
import { Metrics } from './platform/metrics.ts';
import { migrateToLatest } from './platform/migrate.ts';
import { claimNamespace, deploymentId } from './platform/namespace.ts';
import { OutboxDispatcher } from './platform/outbox.ts';
import {
  connectRedis,
  failFastWhenDisconnected,
  readRedisSettings,
  redisConfigured,
  redisSettingsWarnings,
  waitForRedis,
} from './platform/redis.ts';
import { SecretKeys } from './platform/secret-key.ts';
import type { Services } from './services.ts';
import { Scheduler } from './workers/scheduler.ts';
import { StripeEventWorker } from './workers/stripe-events.ts';
import { StripeReconcileJob } from './workers/stripe-reconcile.ts';
import { StripeUsageReportJob } from './workers/stripe-usage-report.ts';
import { startUsageWorkers } from './workers/usage-flush.ts';

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
  /** Authentication failures per client address (the app and the fast path share it). */
  authBrake: ReturnType<typeof createApp>['authBrake'];
  /** Per-key token buckets (the app and the fast path share them). */
  rateLimiter: ReturnType<typeof createApp>['rateLimiter'];
  dispatcher: OutboxDispatcher;
  /** Sends webhook deliveries (runOnce in tests). */
  webhooks: WebhookDeliveryWorker;
  /** Persists due subscription transitions; started only with workers, `runOnce()` always works. */
  scheduler: Scheduler;
  /** Usage counters (Redis or Postgres), the ledger flusher and the reservation sweeper. */
  metering: Metering;
  /** Reports metered usage to Stripe meters; started only with workers, `runOnce()` always works. */
  stripeUsage: StripeUsageReportJob;
  /** Processes stored Stripe events (BullMQ with Redis, in process without); started only with workers. */
  stripeEvents: StripeEventWorker;
  /** Reconciles Stripe with Tessera every STRIPE_RECONCILE_HOURS; started only with workers. */
  stripeReconcile: StripeReconcileJob;
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
  if (redisConfigured(config)) {
    redis = connectRedis(config);
    await waitForRedis(redis);
    const settings = await readRedisSettings(redis);
    if (settings === null) {
      logger.debug('Redis refused CONFIG GET: its eviction and persistence settings are not checked');
    } else {
      for (const warning of redisSettingsWarnings(settings)) logger.warn(warning);
    }
    // Before anything is read or written under the prefix: it may be another deployment's.
    try {
      await claimNamespace(redis, config.redisPrefix, await deploymentId(database.db));
    } catch (err) {
      redis.disconnect();
      if (!options.database) await database.close();
      throw err;
    }
  }
  const metrics = new Metrics(options.defaultMetrics ?? false);
  const platform: PlatformDeps = {
    config,
    database,
    db: database.db,
    redis,
    clock,
    logger,
    metrics,
    commitListeners: [],
    secrets: new SecretKeys(config, logger),
  };
  // The modules' services, each built once from what it needs: metering first, since the
  // decision engine reads live counters from its store. No IO until `metering.start()` below.
  const metering = new Metering(platform);
  // Snapshot loads may read the replica; everything else (and embedded mode) uses the primary.
  const replica = openReplica(config);
  if (replica)
    logger.info('snapshot loads read the replica named by DATABASE_REPLICA_URL when it is current');
  // With a replica, the highest version seen per customer is kept for twice as many customers as
  // the cache holds (at least 10,000), so it outlives the snapshots it guards.
  const versionsTracked = replica ? Math.max(10_000, 2 * config.snapshotCacheSize) : 0;
  const cache = new SnapshotCache(config.snapshotCacheSize, config.snapshotCacheTtlSeconds * 1000, {
    versionsTracked,
    // Catalogs are read from the primary: they are few, and change for every customer at once.
    catalogs: new CatalogCache(database.db, config.snapshotCacheTtlSeconds * 1000),
  });
  const stripeEvents = new StripeEventWorker(() => deps);
  const services: Services = {
    metering,
    stripeEvents,
    decisions: new DecisionEngine(database.db, cache, metering.store, logger, clock, {
      replica: replica?.db ?? null,
      metrics,
    }),
    customerDeletionHooks: [endCustomerSubscriptions],
    lifecycle: stripeLifecycleGateway,
  };
  const deps: AppDeps = { ...platform, services };
  await stripeEvents.open();
  const dispatcher = new OutboxDispatcher(database.db, logger, metrics, { pollMs: config.outboxPollMs });
  const invalidation = new InvalidationBus(cache, redis, `${config.redisPrefix}invalidate`, logger);
  await invalidation.start();
  invalidation.register(dispatcher);
  dispatcher.on('*', (event, round) => fanOutWebhooks(deps, event, round));
  const webhooks = new WebhookDeliveryWorker(() => deps);
  deps.commitListeners.push(invalidation.onCommit);
  deps.commitListeners.push(({ topics }) => {
    if (topics.length > 0) dispatcher.poke();
  });
  await metering.start();
  const { app, resolver, authBrake, rateLimiter } = createApp(deps);
  const scheduler = new Scheduler(deps);
  const stripeUsage = new StripeUsageReportJob(deps);
  const stripeReconcile = new StripeReconcileJob(deps);
  const workers = options.workers ?? config.runWorkers;
  if (workers) {
    dispatcher.start();
    webhooks.start();
    await scheduler.start();
    await stripeUsage.start();
    await stripeEvents.start();
    await stripeReconcile.start();
  }
  const usageWorkers = workers ? await startUsageWorkers(metering, config, logger) : null;
  // Redis lost its data: the job schedulers went with it.
  metering.recovery?.onRenewed(() => {
    const renewing = [usageWorkers?.renew(), scheduler.renew(), stripeUsage.renew(), stripeReconcile.renew()];
    Promise.all(renewing).catch((err: unknown) =>
      logger.error({ err }, 'could not set up the job schedulers again'),
    );
  });
  // Started: while Redis is away, commands fail at once and requests answer 503.
  if (redis) failFastWhenDisconnected(redis);

  return {
    deps,
    app,
    resolver,
    authBrake,
    rateLimiter,
    dispatcher,
    webhooks,
    scheduler,
    metering,
    stripeUsage,
    stripeEvents,
    stripeReconcile,
    async close() {
      await stripeReconcile.stop();
      await stripeEvents.stop();
      await usageWorkers?.stop();
      await stripeUsage.stop();
      await scheduler.stop();
      await dispatcher.stop();
      await webhooks.stop();
      await invalidation.stop();
      metering.stop();
      if (redis) redis.disconnect();
      await replica?.close();
      if (!options.database) await database.close();
    },
  };
}
