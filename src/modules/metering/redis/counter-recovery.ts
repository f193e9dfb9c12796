/**
 * Redis losing its data while Tessera runs (a restart without persistence, a FLUSHDB): without
 * this, every counter would restart from zero and quotas and credit would be handed out again.
 *
 * The epoch key (`<prefix>epoch`, a random value) exists while Redis holds the counters. Every
 * usage script checks it first (one EXISTS) and, when it is gone, counts nothing and fails:
 * usage, reservations and metered checks answer 503 `counters_rebuilding` with Retry-After, never
 * a wrong allow. A once-a-second look at the key notices a loss when nothing is asked. One process
 * then takes the rebuild lock, claims the namespace again, rebuilds the counters, holds and recent
 * idempotency answers from the ledger and the reservations table (rebuild.ts), and sets a new
 * epoch; every process that sees the epoch change forgets its cached readings and its slot
 * registrations, and service resumes. Events accepted but not yet flushed to the ledger when Redis
 * lost its data are lost with it (Redis persistence prevents that: README, "Redis settings").
 */

import type { Clock } from '../../../platform/clock.ts';
import { randomToken } from '../../../platform/ids.ts';
import type { Logger } from '../../../platform/logger.ts';
import { claimNamespace, deploymentId } from '../../../platform/namespace.ts';
import { ledgerMarker, rebuildFromLedger } from './rebuild.ts';
import type { RedisUsageStore } from './store.ts';

/** How often each process looks at the epoch key. */
const EPOCH_CHECK_MS = 1_000;
/** A rebuild lock outlives a process that died holding it by this much at most. */
const LOCK_MS = 120_000;
/** At start-up, while another process rebuilds, look again this often. */
const WAIT_MS = 200;

const RELEASE_LOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export class CounterRecovery {
  /** The epoch this process last saw (its cached readings and registrations belong to it). */
  private known: string | null = null;
  private rebuild: Promise<void> | null = null;
  private checking: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly renewedListeners: Array<() => void> = [];

  constructor(
    private readonly store: RedisUsageStore,
    private readonly prefix: string,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly checkEveryMs = EPOCH_CHECK_MS,
  ) {}

  /**
   * At start-up: rebuilds when Redis does not hold this ledger's counters (it lost its data or is
   * a new instance), waiting while another process does it; then looks at the epoch every second.
   */
  async start(): Promise<void> {
    const { redis, keys } = this.store;
    const marker = await ledgerMarker(this.store);
    for (;;) {
      const [epoch, held] = await Promise.all([redis.get(keys.epoch), redis.get(keys.marker)]);
      if (held === marker && epoch !== null) {
        this.known = epoch;
        break;
      }
      if (held === marker) {
        // Counters in step, no epoch yet (they were built by a version without one).
        await redis.set(keys.epoch, randomToken(16), 'NX');
        continue;
      }
      if (await this.rebuildUnderLock(marker)) continue;
      await new Promise((r) => setTimeout(r, WAIT_MS));
    }
    this.store.guard();
    this.store.onCountersLost = () => this.lost();
    this.timer = setInterval(() => void this.check(), this.checkEveryMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.store.onCountersLost = null;
  }

  /** Called after this process forgot what it knew of Redis (a rebuild here or elsewhere). */
  onRenewed(listener: () => void): void {
    this.renewedListeners.push(listener);
  }

  /** Settles when any rebuild this process runs has finished (tests). */
  async settled(): Promise<void> {
    await this.checking;
    await this.rebuild;
  }

  /** A script found the epoch key gone: look now rather than at the next tick. */
  private lost(): void {
    void this.check();
  }

  /** Looks at the epoch key once: gone, rebuild; changed, forget what belonged to the old one. */
  check(): Promise<void> {
    this.checking ??= this.look().finally(() => {
      this.checking = null;
    });
    return this.checking;
  }

  private async look(): Promise<void> {
    if (this.rebuild) return;
    let epoch: string | null;
    try {
      epoch = await this.store.redis.get(this.store.keys.epoch);
    } catch {
      return; // Redis unreachable: requests fail on their own, and the next look tries again.
    }
    if (epoch === null) {
      this.rebuild ??= this.recover().finally(() => {
        this.rebuild = null;
      });
      await this.rebuild;
    } else if (epoch !== this.known) {
      this.known = epoch;
      this.renewed();
    }
  }

  private async recover(): Promise<void> {
    this.forget();
    try {
      await this.rebuildUnderLock(await ledgerMarker(this.store));
    } catch (err) {
      this.logger.error({ err }, 'could not rebuild the usage counters; trying again in a second');
    }
  }

  /**
   * Rebuilds unless another process holds the lock (then false: it is doing it) or the counters
   * are back in step already. Usage stays refused until the new epoch is set, last.
   */
  private async rebuildUnderLock(marker: string): Promise<boolean> {
    const { redis, keys } = this.store;
    const token = randomToken(16);
    if ((await redis.set(keys.rebuilding, token, 'PX', LOCK_MS, 'NX')) !== 'OK') return false;
    try {
      const [epoch, held] = await Promise.all([redis.get(keys.epoch), redis.get(keys.marker)]);
      if (epoch !== null && held === marker) {
        // Another process finished between the look and the lock.
        return true;
      }
      // Counters that do not match the ledger are not served while they are rebuilt.
      if (epoch !== null) await redis.del(keys.epoch);
      // Redis may have lost the namespace's mark too: claim it again (or refuse, if another took it).
      await claimNamespace(redis, this.prefix, await deploymentId(this.store.db));
      const started = performance.now();
      const report = await rebuildFromLedger(this.store, this.clock.now());
      await this.store.restoreStreams();
      await redis.set(keys.marker, marker);
      const next = randomToken(16);
      await redis.set(keys.epoch, next);
      this.known = next;
      this.renewed();
      const ms = Math.round(performance.now() - started);
      if (report.counters > 0 || report.holds > 0)
        this.logger.warn(
          { ...report, ms },
          'Redis did not hold the usage counters (it lost its data, or is a new instance): rebuilt them from the ledger; events accepted but not yet flushed to the ledger before the loss are lost',
        );
      else this.logger.info({ ...report, ms }, 'usage counters set up in Redis (the ledger is empty)');
      return true;
    } finally {
      await redis.eval(RELEASE_LOCK, 1, keys.rebuilding, token).catch(() => {});
    }
  }

  /** Drops what this process knew of Redis's former contents. */
  private forget(): void {
    this.store.counters?.clear();
    this.store.forgetRegisteredSlots();
  }

  /** A new epoch: forget the old one's, and tell the listeners (job schedulers set up again). */
  private renewed(): void {
    this.forget();
    for (const listener of this.renewedListeners) {
      try {
        listener();
      } catch (err) {
        this.logger.error({ err }, 'after a usage counter rebuild');
      }
    }
  }
}
