import type { ChildProcess } from 'node:child_process';
import os from 'node:os';
import { Redis } from 'ioredis';
import { type BenchSettings, seedCatalog, seedCustomers } from './check-bench.ts';
import {
  ADMIN_KEY,
  api,
  deletePrefix,
  drainWith,
  drive,
  outboxDrained,
  pool,
  type RunResult,
  seededDatabase,
  startProcess,
  startWorker,
  stopProcess,
  table,
} from './lib.ts';
import { describePlacement, placement, ServerSide, workerPlacement } from './pinning.ts';

const FEATURES = ['sso', 'audit_log', 'api_calls', 'seats', 'storage', 'theme'];

/**
 * `npm run bench -- fastpath`: does the node:http fast path earn its place? Two API nodes on one
 * seeded database, identical but for `TESSERA_FAST_PATH` (true on one, false on the other, which
 * then answers every check through the Hono route), get the very same checks in alternation,
 * BENCH_ROUNDS times each (default 3), and the report gives each pair's ratio and the ratio of
 * the means. Its own database, Redis prefix and ports, so it can run beside the other scenarios.
 */
export async function runFastPathBench(s: BenchSettings): Promise<string> {
  const prefix = 'tessera-bench-fastpath:';
  const env = {
    REDIS_URL: s.redisUrl,
    REDIS_PREFIX: prefix,
    TESSERA_ADMIN_KEY: ADMIN_KEY,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
  };
  const fastPort = 3711;
  const appPort = 3712;
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
  const pin = placement();
  const redis = new Redis(s.redisUrl);
  const side = await ServerSide.find(pin, redis, s.pgAdminUrl);
  side.pin();
  const serve = (databaseUrl: string, port: number, fastPath: boolean) =>
    startProcess(
      ['src/main.ts', 'serve'],
      { ...env, DATABASE_URL: databaseUrl, RUN_WORKERS: 'false', TESSERA_FAST_PATH: String(fastPath) },
      port,
      pin,
    );
  const started: ChildProcess[] = [];
  try {
    const { server, databaseUrl, seedSeconds } = await seededDatabase(
      s.pgAdminUrl,
      'tessera_bench_fastpath',
      s.customers,
      (databaseUrl) => serve(databaseUrl, fastPort, true),
      stopProcess,
      async () => {
        await seedCatalog(fastPort);
        await seedCustomers(fastPort, s.customers);
      },
      drainWith(env, workerPlacement(pin)),
    );
    started.push(server);
    started.push(await startWorker({ ...env, DATABASE_URL: databaseUrl }, workerPlacement(pin)));
    await outboxDrained(databaseUrl);
    started.push(await serve(databaseUrl, appPort, false));

    const checkKey = (
      (await api(fastPort, 'POST', '/v1/api-keys', { name: 'bench', scopes: ['check'] })) as {
        secret: string;
      }
    ).secret;
    const bodies = Array.from({ length: Math.max(20_000, 2 * s.customers) }, () =>
      JSON.stringify({
        customer_id: `cust-${Math.floor(Math.random() * s.customers)}`,
        feature: FEATURES[Math.floor(Math.random() * FEATURES.length)],
      }),
    );
    const urls = {
      fast: `http://127.0.0.1:${fastPort}/v1/check`,
      app: `http://127.0.0.1:${appPort}/v1/check`,
    };
    const run = (name: string, url: string, duration: number) =>
      drive(name, { url, connections: s.connections, duration, bodies, key: checkKey });
    // Warm both nodes alike: one check per customer fills the snapshot cache, then a short run
    // of each warms the JIT.
    for (const url of [urls.fast, urls.app]) {
      await pool(
        Array.from({ length: s.customers }, (_, i) => i),
        32,
        async (i) => {
          await fetch(url, {
            method: 'POST',
            headers: { authorization: `Bearer ${checkKey}`, 'content-type': 'application/json' },
            body: JSON.stringify({ customer_id: `cust-${i}`, feature: 'sso' }),
          }).then((r) => r.text());
        },
      );
      await run('warm-up', url, 5);
    }
    const results: RunResult[] = [];
    const ratios: number[] = [];
    for (let round = 1; round <= rounds; round++) {
      // The order flips every round, so a steady drift of the machine favours neither.
      const order = round % 2 === 1 ? (['fast', 'app'] as const) : (['app', 'fast'] as const);
      const pair: Partial<Record<'fast' | 'app', RunResult>> = {};
      for (const which of order) {
        const label = which === 'fast' ? 'fast path (node:http)' : 'Hono route (TESSERA_FAST_PATH=false)';
        pair[which] = await run(`round ${round}: ${label}`, urls[which], s.duration);
        results.push(pair[which]);
      }
      ratios.push(pair.fast!.requestsPerSecond / pair.app!.requestsPerSecond);
    }
    const mean = (which: string) => {
      const runs = results.filter((r) => r.name.includes(which));
      return runs.reduce((n, r) => n + r.requestsPerSecond, 0) / runs.length;
    };
    const overall = mean('fast path') / mean('Hono route');
    const errors = results.reduce((n, r) => n + r.errors + r.non2xx, 0);
    return [
      `## Fast path against the Hono route, POST /v1/check (${new Date().toISOString()})`,
      '',
      `Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}; ${describePlacement(pin)}. ${s.customers} customers, ${seedSeconds > 0 ? `seeded in ${seedSeconds.toFixed(1)} s` : 'copied from a seeded template'}; two API nodes on that database, alike but for TESSERA_FAST_PATH; ${s.connections} connections, ${s.duration} s per run, the same ${bodies.length} prepared bodies for both, ${rounds} rounds alternating which goes first.`,
      '',
      table(results),
      '',
      `fast path / Hono route throughput, per round: ${ratios.map((r) => `${(r * 100).toFixed(1)}%`).join(', ')}; of the means: **${(overall * 100).toFixed(1)}%** (the fast path stays if it is at least 125%); errors ${errors}.`,
    ].join('\n');
  } finally {
    for (const child of started.reverse()) await stopProcess(child);
    await deletePrefix(redis, prefix);
    side.unpin();
    redis.disconnect();
  }
}
