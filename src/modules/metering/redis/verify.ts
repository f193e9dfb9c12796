/** Compares Redis's counters with the ledger's sums: the check behind `usage verify` and the benchmark. */
import type { Redis } from 'ioredis';
import type { Db } from '../../../platform/db.ts';
import { KeyedPipelines } from '../../../platform/redis.ts';
import { ledgerTotals } from '../ledger/ledger.ts';
import type { Mismatch, VerifyReport } from '../store.ts';
import type { UsageKeys } from './keys.ts';

/** What the comparison needs of the Redis store (the store itself: see store.ts). */
export interface VerifyTarget {
  readonly redis: Redis;
  readonly db: Db;
  readonly keys: UsageKeys;
  readonly options: { retentionMs: number };
}

export async function compareWithLedger(
  store: VerifyTarget,
  now: Date,
  environment?: string,
): Promise<VerifyReport> {
  const totals = await ledgerTotals(
    store.db,
    new Date(now.getTime() - store.options.retentionMs),
    environment,
  );
  const pipelines = new KeyedPipelines(store.redis);
  const keys = totals.map((t) =>
    store.keys.counter(store.keys.customer(t.environment, t.customerId), t.feature, {
      start: t.periodStart,
      end: t.periodEnd,
    }),
  );
  for (const key of keys) pipelines.add(key, (p) => p.hmget(key, 'u', 'o', 'cr'));
  const replies = await pipelines.exec();
  const mismatches: Mismatch[] = [];
  totals.forEach((t, i) => {
    const [u, o, cr] = (replies[i]?.[1] as Array<string | null>) ?? [];
    const redis = { used: Number(u ?? 0), overage: Number(o ?? 0), credit: Number(cr ?? 0) };
    const ledger = { used: t.counted, overage: t.overage, credit: t.credit };
    const close = (a: number, b: number) => Math.abs(a - b) < 1e-9;
    if (
      !close(redis.used, ledger.used) ||
      !close(redis.overage, ledger.overage) ||
      !close(redis.credit, ledger.credit)
    )
      mismatches.push({ key: keys[i]!, ledger, redis });
  });
  return { checked: totals.length, mismatches };
}
