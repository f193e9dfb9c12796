/**
 * Run by the scale benchmark as `node --expose-gc --import tsx load/snapshot-memory.ts` with
 * MEMORY_DATABASE_URL, MEMORY_FIRST and MEMORY_COUNT: loads customers `cust-<first>` onwards into
 * one SnapshotCache through the DecisionEngine, the way checks do, and prints (last line, JSON) the
 * heap each one costs after full collections: the snapshot alone, then with the memoised
 * resolution of every feature. Before that, the latency of 500 loads made one at a time.
 */
import { SnapshotCache } from '../src/modules/entitlements/cache.ts';
import { DecisionEngine, type UsageSource } from '../src/modules/entitlements/engine.ts';
import { systemClock } from '../src/platform/clock.ts';
import { openDatabase } from '../src/platform/db.ts';
import { createLogger } from '../src/platform/logger.ts';
import { FEATURES } from './check-bench.ts';
import { pool } from './lib.ts';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

function settled(): NodeJS.MemoryUsage {
  for (let i = 0; i < 4; i++) gc!();
  return process.memoryUsage();
}

async function main() {
  const url = process.env.MEMORY_DATABASE_URL;
  if (!url) throw new Error('MEMORY_DATABASE_URL is not set');
  const first = Number(process.env.MEMORY_FIRST ?? 0);
  const count = Number(process.env.MEMORY_COUNT ?? 20_000);
  const database = await openDatabase({ databaseUrl: url, databasePoolSize: 10, dataDir: '' });
  // Every counter at zero: what is measured is the cache's share, not the counter cache's.
  const usage: UsageSource = {
    read: async (_environment, _snapshot, queries) => new Map(queries.map((q) => [q.feature, { used: 0 }])),
  };
  const cache = new SnapshotCache(count + 10, 3_600_000);
  const engine = new DecisionEngine(database.db, cache, usage, createLogger('silent'), systemClock);
  const now = new Date();
  // The catalog (shared by every snapshot), the code and the pool, before the first measurement.
  for (const feature of FEATURES) await engine.resolve('test', 'cust-0', now, feature);
  // One load at a time first (other customers): a cold load's own latency, without queueing.
  const single: number[] = [];
  for (let i = 0; i < 500; i++) {
    const began = performance.now();
    await engine.snapshot('test', `cust-${first + count + i}`, now);
    single.push(performance.now() - began);
  }
  single.sort((x, y) => x - y);
  const ids = Array.from({ length: count }, (_, i) => `cust-${first + i}`);
  const base = settled();
  const began = Date.now();
  await pool(ids, 16, async (id) => {
    await engine.snapshot('test', id, now);
  });
  const seconds = (Date.now() - began) / 1000;
  const loaded = settled();
  for (const id of ids) for (const feature of FEATURES) await engine.resolve('test', id, now, feature);
  const resolved = settled();
  if (cache.size < count) throw new Error(`only ${cache.size} of ${count} snapshots stayed cached`);
  await database.close();
  process.stdout.write(
    `${JSON.stringify({
      customers: count,
      snapshotBytes: (loaded.heapUsed - base.heapUsed) / count,
      resolvedBytes: (resolved.heapUsed - base.heapUsed) / count,
      rssBytes: (resolved.rss - base.rss) / count,
      seconds,
      singleLoadP50: single[Math.floor(single.length * 0.5)],
      singleLoadP99: single[Math.floor(single.length * 0.99)],
    })}\n`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
