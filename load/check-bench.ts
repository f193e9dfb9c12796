import os from 'node:os';
import { Redis } from 'ioredis';
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
import { paced } from './paced.ts';
import { describePlacement, type Placement, placement, ServerSide, workerPlacement } from './pinning.ts';

export interface BenchSettings {
  pgAdminUrl: string;
  redisUrl: string;
  duration: number;
  connections: number;
  customers: number;
}

export const FEATURES = ['sso', 'audit_log', 'api_calls', 'seats', 'storage', 'theme'];
const PLANS = {
  free: [
    { feature: 'api_calls', limit: 1000, reset: 'month', overage: 'deny' },
    { feature: 'seats', limit: 3, reset: 'none', overage: 'deny' },
    { feature: 'theme', value: 'basic' },
  ],
  pro: [
    { feature: 'sso', enabled: true },
    { feature: 'api_calls', limit: 100000, reset: 'month', overage: 'allow' },
    { feature: 'seats', limit: 25, reset: 'none', overage: 'deny' },
    { feature: 'storage', limit: 100, reset: 'none', overage: 'deny' },
    { feature: 'theme', value: 'custom' },
  ],
  enterprise: [
    { feature: 'sso', enabled: true },
    { feature: 'audit_log', enabled: true },
    { feature: 'api_calls', limit: null, reset: 'month', overage: 'allow' },
    { feature: 'seats', limit: null, reset: 'none', overage: 'allow' },
    { feature: 'storage', limit: 1000, reset: 'none', overage: 'allow' },
    { feature: 'theme', value: 'white_label' },
  ],
};

export async function seedCatalog(port: number): Promise<void> {
  const types: Record<string, string> = {
    sso: 'boolean',
    audit_log: 'boolean',
    api_calls: 'metered',
    seats: 'metered',
    storage: 'metered',
    theme: 'config',
  };
  for (const key of FEATURES) await api(port, 'POST', '/v1/features', { key, name: key, type: types[key] });
  for (const [key, entitlements] of Object.entries(PLANS))
    await api(port, 'POST', '/v1/plans', { key, name: key, entitlements });
}

export async function seedCustomers(port: number, count: number): Promise<void> {
  const plans = Object.keys(PLANS);
  const ids = Array.from({ length: count }, (_, i) => i);
  await pool(ids, 16, async (i) => {
    const id = `cust-${i}`;
    await api(port, 'PUT', `/v1/customers/${id}`, {
      name: `Customer ${i}`,
      attributes: { region: i % 2 ? 'eu' : 'us' },
    });
    await api(port, 'POST', `/v1/customers/${id}/subscriptions`, { plan: plans[i % plans.length] });
    if (i % 10 === 0) {
      await api(port, 'POST', `/v1/customers/${id}/overrides`, {
        feature: 'audit_log',
        enabled: true,
        reason: 'benchmark exception',
      });
    }
  });
}

/** The check benchmark of the decisions issue. */
export async function runCheckBench(s: BenchSettings): Promise<string> {
  const env = {
    REDIS_URL: s.redisUrl,
    REDIS_PREFIX: 'tessera-bench:',
    TESSERA_ADMIN_KEY: ADMIN_KEY,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
  };
  const port = 3701;
  const barePort = 3702;
  const pin = placement();
  const redis = new Redis(s.redisUrl);
  const side = await ServerSide.find(pin, redis, s.pgAdminUrl);
  side.pin();
  // BENCH_PROFILE=dir writes a V8 CPU profile of the server to that directory.
  const profile = process.env.BENCH_PROFILE
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]
    : [];
  // Each run seeds a new database (a deployment of its own), so the prefix starts empty: a Redis
  // namespace belongs to one database, and Tessera refuses to start on another's.
  await deletePrefix(redis, env.REDIS_PREFIX);
  try {
    // The scale-out topology: the API node only serves (RUN_WORKERS=false) and a `tessera worker`
    // runs the outbox, scheduler and flusher, so the figures are of the API alone.
    const { server, databaseUrl, seedSeconds } = await seededDatabase(
      s.pgAdminUrl,
      'tessera_bench',
      s.customers,
      (databaseUrl) =>
        startProcess(
          [...profile, 'src/main.ts', 'serve'],
          { ...env, DATABASE_URL: databaseUrl, RUN_WORKERS: 'false' },
          port,
          pin,
        ),
      stopProcess,
      async () => {
        await seedCatalog(port);
        await seedCustomers(port, s.customers);
      },
      drainWith(env, workerPlacement(pin)),
    );
    const worker = await startWorker({ ...env, DATABASE_URL: databaseUrl }, workerPlacement(pin));
    // Nothing left for the worker to dispatch before measuring (a template made before the seed's
    // outbox was dispatched has it all still to do).
    await outboxDrained(databaseUrl);
    const bare = await startProcess(['load/bare-server.ts'], {}, barePort, pin);
    try {
      return await measureChecks(s, port, barePort, seedSeconds, pin);
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

/**
 * The measured part of the check benchmark, on a running server whose customers `cust-0` ..
 * `cust-<s.customers - 1>` are seeded (the scale benchmark runs it over a larger database too;
 * `seeding` then describes its seed instead).
 */
export async function measureChecks(
  s: BenchSettings,
  port: number,
  barePort: number,
  seedSeconds: number,
  pin: Placement | null,
  seeding?: string,
): Promise<string> {
  const checkKey = (
    (await api(port, 'POST', '/v1/api-keys', { name: 'bench', scopes: ['check'], ...benchRateLimit() })) as {
      secret: string;
    }
  ).secret;
  // BENCH_CHECK_FEATURES=sso,theme narrows the mix (e.g. to compare boolean/config with metered).
  const mix = process.env.BENCH_CHECK_FEATURES?.split(',') ?? FEATURES;
  // Random customer and feature per request, made beforehand: both servers get the very same
  // requests from a client doing the same (small) work, so the ratio compares the servers.
  const bodies = Array.from({ length: Math.max(20_000, 2 * s.customers) }, () =>
    JSON.stringify({
      customer_id: `cust-${Math.floor(Math.random() * s.customers)}`,
      feature: mix[Math.floor(Math.random() * mix.length)],
    }),
  );
  const checkUrl = `http://127.0.0.1:${port}/v1/check`;
  const bareUrl = `http://127.0.0.1:${barePort}/bare`;
  const run = (name: string, url: string, duration: number) =>
    drive(name, { url, connections: s.connections, duration, bodies, key: checkKey });
  // Warm up both servers before measuring: the snapshot cache with one check per customer
  // (the target is for a warm cache), then the JIT with a short run of each.
  await pool(
    Array.from({ length: s.customers }, (_, i) => i),
    32,
    async (i) => {
      await fetch(checkUrl, {
        method: 'POST',
        headers: { authorization: `Bearer ${checkKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ customer_id: `cust-${i}`, feature: 'sso' }),
      }).then((r) => r.text());
    },
  );
  await run('warm-up', checkUrl, 5);
  await run('warm-up', bareUrl, 3);
  // The bare route is measured before and after the check run and the check is compared with
  // their mean: the machine's speed drifts over minutes, and this cancels a steady drift.
  const before = await run('bare Hono route (constant JSON), before', bareUrl, s.duration);
  const readsBefore = await counterCacheReads(port);
  const check = await run('POST /v1/check', checkUrl, s.duration);
  const readsAfter = await counterCacheReads(port);
  const hits = readsAfter.hit - readsBefore.hit;
  const misses = readsAfter.miss - readsBefore.miss;
  const after = await run('bare Hono route (constant JSON), after', bareUrl, s.duration);
  const bareRate = (before.requestsPerSecond + after.requestsPerSecond) / 2;
  const ratio = check.requestsPerSecond / bareRate;
  // Latency at a stated load: at full speed a closed loop of 50 connections has a mean latency of
  // 50 / throughput (Little's law), so its p99 says how fast the machine is, not how long a check
  // takes. Here both servers get the same open-loop load (evenly spaced requests, see paced.ts) at
  // a quarter and at half what the check run sustained.
  const half = Math.max(500, Math.floor(check.requestsPerSecond / 2 / 500) * 500);
  const rates = [Math.max(250, Math.floor(half / 2 / 250) * 250), half];
  const latencySeconds = Math.min(s.duration, 15);
  const atRate: RunResult[] = [];
  const pauses: string[] = [];
  for (const rate of rates) {
    const options = { connections: s.connections, duration: latencySeconds, rate, bodies, key: checkKey };
    const watch = await watchServer(port);
    atRate.push(await paced(`POST /v1/check at ${rate} req/s`, { url: checkUrl, ...options }));
    pauses.push(`at ${rate} req/s ${await watch()}`);
    atRate.push(await paced(`bare Hono route at ${rate} req/s`, { url: bareUrl, ...options }));
  }
  const [checkAtQuarter, , checkAtHalf] = atRate as [RunResult, RunResult, RunResult, RunResult];
  const results = [before, check, after, ...atRate];
  const errors = results.reduce((n, r) => n + r.errors + r.non2xx, 0);
  return [
    `## POST /v1/check (${new Date().toISOString()})`,
    '',
    `Features checked: ${mix.join(', ')}. Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}; ${describePlacement(pin)}. ${seeding ?? `${s.customers} customers over 3 plans, overrides on 10%, ${seedSeconds > 0 ? `seeded through the API in ${seedSeconds.toFixed(1)} s` : 'copied from the seeded template of an earlier run (BENCH_SEED=reuse)'}`}. ${s.connections} connections; full-speed runs: autocannon, ${s.duration} s each; runs at a stated rate: an open-loop generator (evenly spaced requests, latency counted from when each was due), ${latencySeconds} s each; random customer and feature per request (the same ${bodies.length} prepared bodies, in the same order, for both servers), after a warm-up.`,
    '',
    table(results),
    '',
    `check / bare throughput ratio: **${(ratio * 100).toFixed(1)}%** (target >= 50%; bare = mean of the runs before and after, ${Math.round(bareRate)} req/s); check p99 over ${s.connections} connections: **${checkAtQuarter.p99} ms at ${rates[0]} req/s, ${checkAtHalf.p99} ms at ${rates[1]} req/s** (target < 5 ms; the bare route's own p99 at those rates is in the table; at full speed ${check.p99} ms, where the mean is ${((s.connections / check.requestsPerSecond) * 1000).toFixed(1)} ms by Little's law); errors ${errors} (target 0).`,
    '',
    `Tessera's pauses during the runs at a stated rate (its /metrics): ${pauses.join('; ')}.`,
    '',
    `Metered counter readings in the check run: ${hits + misses}, of which ${hits + misses > 0 ? ((hits / (hits + misses)) * 100).toFixed(1) : '0'}% from the per-process counter cache (${misses} read from Redis; no usage is recorded during this benchmark, so counters do not change).`,
  ].join('\n');
}

/**
 * What a run cost the server in pauses, from its /metrics: garbage collections by kind (count, time,
 * how many took over 10 ms) and the longest event-loop delay. Reading /metrics before the run
 * starts the event-loop figure afresh (the server resets it at every read).
 */
async function watchServer(port: number): Promise<() => Promise<string>> {
  const gc = (text: string, kind: string) => ({
    count: metric(text, `nodejs_gc_duration_seconds_count\\{kind="${kind}"\\}`),
    seconds: metric(text, `nodejs_gc_duration_seconds_sum\\{kind="${kind}"\\}`),
    upTo10ms: metric(text, `nodejs_gc_duration_seconds_bucket\\{le="0\\.01",kind="${kind}"\\}`),
  });
  const before = await metricsOf(port);
  return async () => {
    const after = await metricsOf(port);
    const part = (kind: string, name: string) => {
      const a = gc(before, kind);
      const b = gc(after, kind);
      const count = b.count - a.count;
      const over = count - (b.upTo10ms - a.upTo10ms);
      return `${count} ${name} (${((b.seconds - a.seconds) * 1000).toFixed(0)} ms in all, ${over} over 10 ms)`;
    };
    const lag = metric(after, 'nodejs_eventloop_lag_max_seconds') * 1000;
    return `${part('minor', 'scavenges')}, ${part('major', 'mark-compacts')}, longest event-loop delay ${lag.toFixed(1)} ms`;
  };
}

/** The server's counter-cache hits and misses so far (its /metrics). */
async function counterCacheReads(port: number): Promise<{ hit: number; miss: number }> {
  const text = await metricsOf(port);
  const value = (outcome: string) =>
    metric(text, `tessera_counter_cache_reads_total\\{outcome="${outcome}"\\}`);
  return { hit: value('hit'), miss: value('miss') };
}

async function metricsOf(port: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
}

/** One series' value in a Prometheus text exposition (`series` is a regular expression); 0 when absent. */
function metric(text: string, series: string): number {
  return Number(new RegExp(`^${series} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
}

/** BENCH_RATE_LIMIT=N gives the bench key a rate limit (one high enough never to refuse measures the bucket's cost). */
function benchRateLimit(): { rate_limit_per_second?: number } {
  const limit = process.env.BENCH_RATE_LIMIT;
  return limit ? { rate_limit_per_second: Number(limit) } : {};
}
