import os from 'node:os';
import {
  ADMIN_KEY,
  api,
  drive,
  freshDatabase,
  pool,
  type RunResult,
  startProcess,
  stopProcess,
  table,
} from './lib.ts';

export interface BenchSettings {
  pgAdminUrl: string;
  redisUrl: string;
  duration: number;
  connections: number;
  customers: number;
}

const FEATURES = ['sso', 'audit_log', 'api_calls', 'seats', 'storage', 'theme'];
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
  const databaseUrl = await freshDatabase(s.pgAdminUrl, 'tessera_bench');
  const env = {
    DATABASE_URL: databaseUrl,
    REDIS_URL: s.redisUrl,
    REDIS_PREFIX: 'tessera-bench:',
    TESSERA_ADMIN_KEY: ADMIN_KEY,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
  };
  const port = 3701;
  const barePort = 3702;
  // BENCH_PROFILE=dir writes a V8 CPU profile of the server to that directory.
  const profile = process.env.BENCH_PROFILE
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_PROFILE}`]
    : [];
  const server = await startProcess([...profile, 'src/main.ts', 'serve'], env, port);
  const bare = await startProcess(['load/bare-server.ts'], {}, barePort);
  try {
    const seedStart = Date.now();
    await seedCatalog(port);
    await seedCustomers(port, s.customers);
    const seedSeconds = (Date.now() - seedStart) / 1000;
    const checkKey = (
      (await api(port, 'POST', '/v1/api-keys', { name: 'bench', scopes: ['check'] })) as { secret: string }
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
    // Warm up both servers before measuring: the snapshot cache with one check per customer
    // (the target is for a warm cache), then the JIT with a short run of each.
    await pool(
      Array.from({ length: s.customers }, (_, i) => i),
      32,
      async (i) => {
        await fetch(`http://127.0.0.1:${port}/v1/check`, {
          method: 'POST',
          headers: { authorization: `Bearer ${checkKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ customer_id: `cust-${i}`, feature: 'sso' }),
        }).then((r) => r.text());
      },
    );
    await drive('warm-up', {
      url: `http://127.0.0.1:${port}/v1/check`,
      connections: s.connections,
      duration: 5,
      bodies,
      key: checkKey,
    });
    await drive('warm-up', {
      url: `http://127.0.0.1:${barePort}/bare`,
      connections: s.connections,
      duration: 3,
      bodies,
      key: checkKey,
    });
    const results: RunResult[] = [];
    results.push(
      await drive('bare Hono route (constant JSON)', {
        url: `http://127.0.0.1:${barePort}/bare`,
        connections: s.connections,
        duration: s.duration,
        bodies,
        key: checkKey,
      }),
    );
    results.push(
      await drive('POST /v1/check', {
        url: `http://127.0.0.1:${port}/v1/check`,
        connections: s.connections,
        duration: s.duration,
        bodies,
        key: checkKey,
      }),
    );
    const [baseline, check] = results as [RunResult, RunResult];
    const ratio = check.requestsPerSecond / baseline.requestsPerSecond;
    return [
      `## POST /v1/check (${new Date().toISOString()})`,
      '',
      `Features checked: ${mix.join(', ')}. Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}. ${s.customers} customers over 3 plans, overrides on 10%, seeded through the API in ${seedSeconds.toFixed(1)} s. autocannon, ${s.connections} connections, ${s.duration} s per run, random customer and feature per request (the same ${bodies.length} prepared bodies, in the same order, for both servers), after a warm-up.`,
      '',
      table(results),
      '',
      `check / bare throughput ratio: **${(ratio * 100).toFixed(1)}%** (target >= 50%); check p99 ${check.p99} ms (target < 5 ms); errors ${check.errors + check.non2xx} (target 0).`,
    ].join('\n');
  } finally {
    await stopProcess(server);
    await stopProcess(bare);
  }
}
