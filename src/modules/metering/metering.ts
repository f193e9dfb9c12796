/**
 * The metering slice as the runtime sees it: the store (Redis when configured, else Postgres),
 * its start-up check against the ledger, and the verbs the workers and the CLI call.
 */
import type { PlatformDeps } from '../../platform/context.ts';
import { LedgerCopier } from './ledger/copy.ts';
import { PostgresUsageStore } from './postgres/store.ts';
import { CounterRecovery } from './redis/counter-recovery.ts';
import { DEFAULT_REDIS_OPTIONS, RedisUsageStore } from './redis/store.ts';
import type { FlushOptions, RebuildReport, UsageStore } from './store.ts';

export class Metering {
  readonly store: UsageStore;
  /** Redis mode: notices Redis losing its data and rebuilds the counters (counter-recovery.ts). */
  readonly recovery: CounterRecovery | null;

  constructor(private readonly deps: PlatformDeps) {
    const { config, database, metrics } = deps;
    const reads = (outcome: string) => metrics.tally(metrics.counterCacheReads, { outcome });
    const store = deps.redis
      ? new RedisUsageStore(deps.redis, deps.db, deps.config.redisPrefix, deps.clock, deps.logger, {
          ...DEFAULT_REDIS_OPTIONS,
          // The embedded database keeps the insert (see ledger/copy.ts).
          copier: database.kind === 'postgres' ? new LedgerCopier(database.pool) : null,
          metrics,
          counterCache: {
            maxEntries: config.counterCacheSize,
            maxAgeMs: config.counterCacheSeconds * 1000,
            reads: { hit: reads('hit'), miss: reads('miss') },
          },
        })
      : null;
    this.store = store ?? new PostgresUsageStore(deps.db, deps.clock);
    this.recovery = store
      ? new CounterRecovery(store, deps.config.redisPrefix, deps.clock, deps.logger)
      : null;
  }

  /**
   * Readies the store and, when Redis does not hold what the ledger says it had, rebuilds it; then
   * watches for Redis losing its data while running.
   */
  async start(): Promise<void> {
    await this.store.start();
    await this.recovery?.start();
  }

  stop(): void {
    this.recovery?.stop();
    this.store.stop();
  }

  flush(options?: FlushOptions): Promise<number> {
    return this.store.flush(options);
  }

  sweep(): Promise<number> {
    return this.store.sweepExpired(this.deps.clock.now());
  }

  /** Rebuilds the counters from the ledger (Postgres mode: nothing to rebuild, returns null). */
  rebuild(): Promise<RebuildReport | null> {
    return this.store.rebuild(this.deps.clock.now());
  }
}
