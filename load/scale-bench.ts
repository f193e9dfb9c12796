import { spawn } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import os from 'node:os';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { type BenchSettings, measureChecks, seedCatalog } from './check-bench.ts';
import {
  ADMIN_KEY,
  api,
  deletePrefix,
  drainWith,
  outboxDrained,
  type RunResult,
  seededDatabase,
  startProcess,
  startWorker,
  stopProcess,
  table,
} from './lib.ts';
import { paced } from './paced.ts';
import { describePlacement, placement, ServerSide, workerPlacement } from './pinning.ts';

/**
 * `npm run bench -- scale`: Tessera over 1,000,000 customers (BENCH_SCALE_CUSTOMERS), seeded with
 * COPY into its own database (`tessera_bench_1m`; BENCH_SEED=reuse keeps it as a template). Measures
 * checks on a cold cache (every request a customer this process has not loaded), the normal warm
 * check benchmark over 10,000 of the customers, and the heap a cached customer costs
 * (load/snapshot-memory.ts, in a child with --expose-gc).
 */
const PLANS = ['free', 'pro', 'enterprise'];
const FEATURES = ['sso', 'audit_log', 'api_calls', 'seats', 'storage', 'theme'];
const WARM_CUSTOMERS = 10_000;
/** The cold runs' warm-up: cold checks of customers the measured runs do not ask about. */
const WARM_UP_RATE = 200;
const WARM_UP_SECONDS = 5;

export async function runScaleBench(s: BenchSettings): Promise<string> {
  const customers = Number(process.env.BENCH_SCALE_CUSTOMERS ?? 1_000_000);
  const env = {
    REDIS_URL: s.redisUrl,
    REDIS_PREFIX: 'tessera-bench-scale:',
    TESSERA_ADMIN_KEY: ADMIN_KEY,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
  };
  // Spare ports: other benchmarks may be running on this machine.
  const port = await freePort();
  const barePort = await freePort();
  const pin = placement();
  const redis = new Redis(s.redisUrl);
  const side = await ServerSide.find(pin, redis, s.pgAdminUrl);
  side.pin();
  await deletePrefix(redis, env.REDIS_PREFIX);
  try {
    const name = customers === 1_000_000 ? 'tessera_bench_1m' : `tessera_bench_scale_${customers}`;
    const startServer = (databaseUrl: string) =>
      startProcess(
        ['src/main.ts', 'serve'],
        { ...env, DATABASE_URL: databaseUrl, RUN_WORKERS: 'false' },
        port,
        pin,
      );
    const { server, databaseUrl, seedSeconds } = await seededDatabase(
      s.pgAdminUrl,
      name,
      customers,
      startServer,
      stopProcess,
      async () => {
        await seedCatalog(port);
        await copyCustomers(urlOf(s.pgAdminUrl, name), customers);
      },
      drainWith(env, workerPlacement(pin)),
    );
    const worker = await startWorker({ ...env, DATABASE_URL: databaseUrl }, workerPlacement(pin));
    await outboxDrained(databaseUrl);
    const bare = await startProcess(['load/bare-server.ts'], {}, barePort, pin);
    try {
      const cold = await measureCold(s, port, customers);
      const memory = await measureMemory(databaseUrl, customers);
      const warm = await measureChecks(
        { ...s, customers: WARM_CUSTOMERS },
        port,
        barePort,
        seedSeconds,
        pin,
        `${WARM_CUSTOMERS} of the ${customers} customers (the same mix as the normal check benchmark)`,
      );
      return [
        `## Scale: ${customers} customers (${new Date().toISOString()})`,
        '',
        `Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}; ${describePlacement(pin)}. ${customers} customers over 3 plans, overrides on 10%, ${seedSeconds > 0 ? `seeded with COPY in ${seedSeconds.toFixed(1)} s (catalog through the API, then customers, subscriptions and overrides copied, VACUUM ANALYZE)` : 'copied from the seeded template of an earlier run (BENCH_SEED=reuse)'}. Database size: ${await databaseSize(databaseUrl)}.`,
        '',
        cold,
        '',
        memory,
        '',
        warm,
      ].join('\n');
    } finally {
      await stopProcess(server);
      await stopProcess(worker);
      await stopProcess(bare);
    }
  } finally {
    side.unpin();
    redis.disconnect();
  }
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', () => resolve()));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function urlOf(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

async function databaseSize(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ size: string }>(
      'SELECT pg_size_pretty(pg_database_size(current_database())) AS size',
    );
    return rows[0]?.size ?? 'unknown';
  } finally {
    await client.end();
  }
}

/**
 * Customers `cust-0` .. `cust-<n-1>`, each on plan free, pro or enterprise (in turn), an override on
 * every tenth: what the normal check benchmark seeds through the API, written with COPY. Rows only:
 * no audit events or outbox entries for them (the benchmark measures decisions, not the seed).
 */
async function copyCustomers(url: string, n: number): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const now = new Date();
    const end = new Date(now);
    end.setUTCMonth(end.getUTCMonth() + 1);
    const at = now.toISOString();
    const until = end.toISOString();
    const copy = async (sql: string, line: (i: number) => string | null) => {
      const stream = client.query(copyFrom(sql));
      await pipeline(Readable.from(lines(n, line)), stream);
    };
    await copy('COPY customers (environment, customer_id, name, attributes, version) FROM STDIN', (i) =>
      ['test', `cust-${i}`, `Customer ${i}`, JSON.stringify({ region: i % 2 ? 'eu' : 'us' }), '2'].join('\t'),
    );
    await copy(
      'COPY subscriptions (id, environment, customer_id, plan_key, plan_version, addon, status, quantity, started_at, billing_anchor, current_period_start, current_period_end) FROM STDIN',
      (i) =>
        [
          `sub_scale_${i}`,
          'test',
          `cust-${i}`,
          PLANS[i % PLANS.length],
          '1',
          'f',
          'active',
          '1',
          at,
          at,
          at,
          until,
        ].join('\t'),
    );
    const createdBy = JSON.stringify({ type: 'system', id: null, name: 'scale benchmark seed' });
    await copy(
      'COPY overrides (id, environment, customer_id, feature, effect, starts_at, reason, created_by) FROM STDIN',
      (i) =>
        i % 10 === 0
          ? [
              `ovr_scale_${i}`,
              'test',
              `cust-${i}`,
              'audit_log',
              JSON.stringify({ type: 'boolean', enabled: true }),
              at,
              'benchmark exception',
              createdBy,
            ].join('\t')
          : null,
    );
  } finally {
    await client.end();
  }
}

/** COPY text, a few thousand lines per chunk. */
function* lines(n: number, line: (i: number) => string | null): Generator<string> {
  let chunk = '';
  for (let i = 0; i < n; i++) {
    const text = line(i);
    if (text !== null) chunk += `${text}\n`;
    if (chunk.length > 256 * 1024) {
      yield chunk;
      chunk = '';
    }
  }
  if (chunk) yield chunk;
}

/**
 * Checks of customers this process has never loaded, open loop at stated rates: each request a
 * new customer (a shuffled range above the warm benchmark's customers), a random feature. First
 * 5 s at 200 req/s of other new customers, not reported (the JIT and the pool warm, the cache not). The
 * server's tessera_snapshot_loads_total confirms that every request loaded a snapshot.
 */
async function measureCold(s: BenchSettings, port: number, customers: number): Promise<string> {
  const checkKey = (
    (await api(port, 'POST', '/v1/api-keys', { name: 'scale bench', scopes: ['check'] })) as {
      secret: string;
    }
  ).secret;
  const rates = (process.env.BENCH_COLD_RATES ?? '200,500').split(',').map(Number);
  const seconds = Math.min(s.duration, 15);
  const needed = rates.reduce((n, r) => n + r * seconds, WARM_UP_RATE * WARM_UP_SECONDS);
  const pool = Array.from({ length: customers - WARM_CUSTOMERS }, (_, i) => WARM_CUSTOMERS + i);
  if (needed > pool.length)
    throw new Error(`the cold runs need ${needed} customers, there are ${pool.length}`);
  for (let i = pool.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  const url = `http://127.0.0.1:${port}/v1/check`;
  const results: RunResult[] = [];
  const notes: string[] = [];
  let next = 0;
  // A node that has run a while: 5 s of cold checks of other customers first (not reported), so
  // the measured runs see compiled code and open pool connections, and still a cold cache for every
  // customer they ask about.
  const warmCount = WARM_UP_RATE * WARM_UP_SECONDS;
  await paced('POST /v1/check, cold, warm-up', {
    url,
    connections: s.connections,
    duration: WARM_UP_SECONDS,
    rate: WARM_UP_RATE,
    bodies: pool.slice(0, warmCount).map((i) => JSON.stringify({ customer_id: `cust-${i}`, feature: 'sso' })),
    key: checkKey,
  });
  next = warmCount;
  for (const rate of rates) {
    const count = rate * seconds;
    const bodies = pool.slice(next, next + count).map((i) =>
      JSON.stringify({
        customer_id: `cust-${i}`,
        feature: FEATURES[Math.floor(Math.random() * FEATURES.length)],
      }),
    );
    next += count;
    const before = await snapshotLoads(port);
    results.push(
      await paced(`POST /v1/check, cold, at ${rate} req/s`, {
        url,
        connections: s.connections,
        duration: seconds,
        rate,
        bodies,
        key: checkKey,
      }),
    );
    const loads = (await snapshotLoads(port)) - before;
    notes.push(`${loads} snapshot loads for ${count} checks at ${rate} req/s`);
  }
  const worst = Math.max(...results.map((r) => r.p99));
  return [
    '### Checks on a cold cache',
    '',
    `Every request a customer the server has not loaded before (${seconds} s per rate, open loop, ${s.connections} connections), after ${WARM_UP_SECONDS} s of cold checks of other customers at ${WARM_UP_RATE} req/s (not reported: the code compiled and the pool open, the cache cold for every customer measured).`,
    '',
    table(results),
    '',
    `Cold check p99: **${results.map((r) => `${r.p99} ms at ${r.name.replace(/.* at /, '')}`).join(', ')}** (target < 20 ms: ${worst < 20 ? 'met' : 'missed'}); ${notes.join('; ')}.`,
  ].join('\n');
}

async function snapshotLoads(port: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(/^tessera_snapshot_loads_total\{[^}]*\} (\S+)$/gm))
    total += Number(match[1]);
  return total;
}

interface MemoryFigures {
  customers: number;
  snapshotBytes: number;
  resolvedBytes: number;
  rssBytes: number;
  seconds: number;
  singleLoadP50: number;
  singleLoadP99: number;
}

/** The heap a cached customer costs, measured in a child process with --expose-gc. */
async function measureMemory(url: string, customers: number): Promise<string> {
  const count = Number(process.env.BENCH_MEMORY_CUSTOMERS ?? 20_000);
  const first = Math.max(WARM_CUSTOMERS, customers - count - 600);
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', 'load/snapshot-memory.ts'], {
    env: {
      ...process.env,
      MEMORY_DATABASE_URL: url,
      MEMORY_FIRST: String(first),
      MEMORY_COUNT: String(count),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    out += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`load/snapshot-memory.ts exited with ${code}`);
  const m = JSON.parse(out.trim().split('\n').pop() ?? '{}') as MemoryFigures;
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(1)} KiB`;
  const mib = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MiB`;
  return [
    '### Memory per cached customer',
    '',
    `${m.customers} snapshots loaded into one SnapshotCache through the DecisionEngine (a child process with --expose-gc; heap measured after full collections, loading took ${m.seconds.toFixed(1)} s):`,
    '',
    '| what is held per customer | heap per customer | at SNAPSHOT_CACHE_SIZE=50,000 (default) | at 1,000,000 |',
    '|---|---:|---:|---:|',
    `| the snapshot (customer, subscriptions, overrides; catalog shared) | ${kib(m.snapshotBytes)} | ${mib(m.snapshotBytes * 50_000)} | ${mib(m.snapshotBytes * 1_000_000)} |`,
    `| plus the memoised resolutions of all ${FEATURES.length} features | ${kib(m.resolvedBytes)} | ${mib(m.resolvedBytes * 50_000)} | ${mib(m.resolvedBytes * 1_000_000)} |`,
    '',
    `Resident set growth over the same load: ${kib(m.rssBytes)} per customer. A snapshot load on its own (500 loads one at a time, in process, no HTTP): p50 ${m.singleLoadP50.toFixed(2)} ms, p99 ${m.singleLoadP99.toFixed(2)} ms.`,
  ].join('\n');
}
