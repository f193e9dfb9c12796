/**
 * `npm run bench [-- check|usage|fastpath|floor|tokens|scale]`: starts Tessera on real PostgreSQL and Redis, seeds it, and drives
 * it with autocannon beside a bare Hono route in the same run, so ratios are measured together.
 * Environment: BENCH_PG (admin URL, default postgres://postgres@127.0.0.1:5432/postgres),
 * BENCH_REDIS (default redis://127.0.0.1:6379), BENCH_DURATION (seconds, default 20),
 * BENCH_CONNECTIONS (default 50), BENCH_CUSTOMERS (default 10000), BENCH_RATE_LIMIT (requests per second
 * for the bench key of check and usage; unset: unlimited).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { runCheckBench } from './check-bench.ts';

const scenario = process.argv[2] ?? 'check';
const settings = {
  pgAdminUrl: process.env.BENCH_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  redisUrl: process.env.BENCH_REDIS ?? 'redis://127.0.0.1:6379',
  duration: Number(process.env.BENCH_DURATION ?? 20),
  connections: Number(process.env.BENCH_CONNECTIONS ?? 50),
  customers: Number(process.env.BENCH_CUSTOMERS ?? 10_000),
};

async function main() {
  let report: string;
  switch (scenario) {
    case 'check':
      report = await runCheckBench(settings);
      break;
    case 'usage': {
      const { runUsageBench } = await import('./usage-bench.ts');
      report = await runUsageBench(settings);
      break;
    }
    case 'fastpath': {
      const { runFastPathBench } = await import('./fastpath-bench.ts');
      report = await runFastPathBench(settings);
      break;
    }
    case 'floor': {
      const { runFloorBench } = await import('./floor-bench.ts');
      report = await runFloorBench(settings);
      break;
    }
    case 'scale': {
      const { runScaleBench } = await import('./scale-bench.ts');
      report = await runScaleBench(settings);
      break;
    }
    case 'tokens': {
      const { runTokensBench } = await import('./tokens-bench.ts');
      report = await runTokensBench(settings);
      break;
    }
    default:
      throw new Error(`unknown scenario '${scenario}' (check | usage | fastpath | floor | tokens | scale)`);
  }
  process.stdout.write(`\n${report}\n`);
  mkdirSync('load/results', { recursive: true });
  writeFileSync(
    `load/results/${scenario}-${new Date().toISOString().replace(/[:.]/g, '-')}.md`,
    `${report}\n`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(
      `bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exit(1);
  },
);
