/**
 * `npm run load [-- options]`: Tessera as shipped (compiled dist/, `tessera serve` and `tessera
 * worker` as separate processes) on the real PostgreSQL and Redis, seeded with many customers,
 * under a mixed workload (90% checks, 8% usage events, 2% admin writes); the bare node:http route
 * measured in the same run with the same requests; a phase at a named rate; CPU and memory of every
 * process sampled throughout. Writes load/report/index.html and load/report/report.json.
 * `--soak[=seconds]` (default 600) runs the mixed load that long instead and reports the memory
 * slope of each process. See docs/benchmarks.md ("Mixed load").
 *
 * Options: --duration (s of the mixed run, 60), --connections (50), --customers (100000),
 * --rate (req/s of the fixed-rate phase, 1000), --warm (at most so many seconds warming the caches
 * with a check of each feature per customer, 120), --reuse (keep the seeded database as a template
 * and start later runs from a copy), --soak[=seconds].
 * Environment: LOAD_PG (admin URL, default postgres://postgres@127.0.0.1:5432/postgres),
 * LOAD_PROFILE_DIR (CPU profiles of the API and worker, see processes.ts),
 * LOAD_REDIS (default redis://127.0.0.1:6379), LOAD_PORT (the API's port, default 3791; the bare
 * route's is the next one).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { cpuOfTree } from './cpu.ts';
import { ADMIN_KEY, api, deletePrefix, outboxDrained, seededDatabase } from './lib.ts';
import {
  ensureBuilt,
  ownStats,
  postmasterPid,
  procStats,
  Sampler,
  startApi,
  started,
  startFloor,
  startWorker,
  stop,
  type Tessera,
} from './mixed/processes.ts';
import {
  type LoadReport,
  type PhaseFigures,
  phaseFigures,
  processFigures,
  renderHtml,
  withTrends,
} from './mixed/report.ts';
import { baseSubscriptions, customerId, seedCustomers } from './mixed/seed.ts';
import {
  type Call,
  CHECKED_FEATURES,
  driveMix,
  Mix,
  OPS,
  Recorder,
  rawRequest,
  WEIGHTS,
} from './mixed/workload.ts';
import { paced } from './paced.ts';

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '60' },
    connections: { type: 'string', default: '50' },
    customers: { type: 'string', default: '100000' },
    rate: { type: 'string', default: '1000' },
    warm: { type: 'string', default: '120' },
    reuse: { type: 'boolean', default: false },
    soak: { type: 'string' },
  },
  // `--soak` alone means the default soak.
  args: process.argv.slice(2).map((a) => (a === '--soak' ? '--soak=600' : a)),
});
const positive = (name: string, v: string | undefined) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, not '${v}'`);
  return n;
};
const settings = {
  pgAdminUrl: process.env.LOAD_PG ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  redisUrl: process.env.LOAD_REDIS ?? 'redis://127.0.0.1:6379',
  duration: positive('duration', values.duration),
  connections: Math.floor(positive('connections', values.connections)),
  customers: Math.floor(positive('customers', values.customers)),
  rate: positive('rate', values.rate),
  warm: positive('warm', values.warm),
  reuse: values.reuse ?? false,
  soak: values.soak === undefined ? null : positive('soak', values.soak),
};

const API_PORT = Number(process.env.LOAD_PORT ?? 3791);
const FLOOR_PORT = API_PORT + 1;
const PREFIX = 'tessera-load:';
const DATABASE = 'tessera_load';
const CHECK_P99_TARGET_MS = 10;
const FLOOR_RATIO_TARGET = 0.4;
const REPORT_DIR = 'load/report';

const log = (line: string) =>
  process.stdout.write(`[load ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

async function main(): Promise<void> {
  const startedAt = new Date().toISOString();
  const build = ensureBuilt();
  const env = {
    REDIS_URL: settings.redisUrl,
    REDIS_PREFIX: PREFIX,
    TESSERA_ADMIN_KEY: ADMIN_KEY,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    // Sized for every customer of the run, as a deployment of this size would be (default 50,000).
    SNAPSHOT_CACHE_SIZE: String(Math.max(50_000, Math.ceil(settings.customers * 1.2))),
    COUNTER_CACHE_SIZE: String(Math.max(100_000, settings.customers * 4)),
  };
  const redis = new Redis(settings.redisUrl);
  // A Redis namespace belongs to one database: each run starts on a new copy, so the prefix is
  // emptied first (this harness's prefix only; nothing else in the shared Redis is touched).
  await deletePrefix(redis, PREFIX);
  let seeded = '';
  let warmedCustomers = 0;
  const {
    server: api0,
    databaseUrl,
    seedSeconds,
  } = await seededDatabase(
    settings.pgAdminUrl,
    DATABASE,
    settings.customers,
    (url) => startApi({ ...env, DATABASE_URL: url }, API_PORT),
    (t: Tessera) => stop(t.child),
    async () => {
      log(`seeding ${settings.customers} customers`);
      seeded = await seedCustomers(API_PORT, dbUrl(DATABASE), settings.customers);
      log(`seeded: ${seeded}`);
    },
    async (url) => {
      const worker = await startWorker({ ...env, DATABASE_URL: url });
      try {
        await outboxDrained(url);
      } finally {
        await stop(worker.child);
      }
    },
    settings.reuse,
  );
  const apiProcess = api0;
  log(seedSeconds > 0 ? `seeded in ${seedSeconds.toFixed(1)} s` : 'copied the seeded template (--reuse)');
  const worker = await startWorker({ ...env, DATABASE_URL: databaseUrl });
  await outboxDrained(databaseUrl);
  const floor = await startFloor(FLOOR_PORT);
  const redisPid = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]) || 0;
  const postmaster = await postgresPostmaster(settings.pgAdminUrl);
  const sampler = new Sampler(
    [
      {
        name: 'api',
        read: () => procStats(apiProcess.child.pid!),
        memory: () => apiProcess.memory,
      },
      { name: 'worker', read: () => procStats(worker.child.pid!), memory: () => worker.memory },
      { name: 'load generator', read: ownStats },
      ...(redisPid && procStats(redisPid) ? [{ name: 'redis', read: () => procStats(redisPid) }] : []),
      ...(postmaster
        ? [
            {
              name: 'postgres',
              read: () => {
                try {
                  return { cpuMs: cpuOfTree(postmaster) / 1000, rss: 0 };
                } catch {
                  return null;
                }
              },
            },
          ]
        : []),
    ],
    settings.soak ? 2000 : 1000,
  );
  sampler.start();
  const measuring = Date.now();
  try {
    const report = await measure(databaseUrl, sampler);
    report.setup = {
      machine: `${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), ${Math.round(os.totalmem() / 2 ** 30)} GiB`,
      node: process.version,
      tessera: `${build}; API (tessera serve, RUN_WORKERS=false) and tessera worker as separate processes`,
      customers: settings.customers,
      seeding:
        seedSeconds > 0
          ? `${seedSeconds.toFixed(1)} s (catalog and 20 template customers through the API, the rest copied in SQL: ${seeded})`
          : 'copied from the seeded template of an earlier run (--reuse)',
      connections: settings.connections,
      'mix (weights)': OPS.map((op) => `${op} ${WEIGHTS[op]}%`).join(', '),
      'snapshot cache size': env.SNAPSHOT_CACHE_SIZE,
      'warm-up': `a check of each of ${CHECKED_FEATURES.length} features for ${warmedCustomers} of ${settings.customers} customers (at most ${settings.warm} s), then 5 s of the mix`,
      ...report.setup,
    };
    report.startedAt = startedAt;
    mkdirSync(REPORT_DIR, { recursive: true });
    writeFileSync(`${REPORT_DIR}/report.json`, `${JSON.stringify(report, null, 1)}\n`);
    writeFileSync(`${REPORT_DIR}/index.html`, renderHtml(report));
    process.stdout.write(
      `\n${summaryText(report)}\nreport: ${REPORT_DIR}/index.html, ${REPORT_DIR}/report.json (measuring took ${Math.round((Date.now() - measuring) / 1000)} s after seeding)\n`,
    );
  } finally {
    sampler.stop();
    await stop(apiProcess.child);
    await stop(worker.child);
    await stop(floor);
    redis.disconnect();
  }

  async function measure(databaseUrl: string, sampler: Sampler): Promise<LoadReport> {
    const checkKey = (
      (await api(API_PORT, 'POST', '/v1/api-keys', { name: 'load', scopes: ['check'] })) as { secret: string }
    ).secret;
    const subscriptions = await baseSubscriptions(databaseUrl, settings.customers);
    const mix = new Mix(settings.customers, subscriptions, { check: checkKey, admin: ADMIN_KEY });
    const tessera = `http://127.0.0.1:${API_PORT}`;
    const bare = `http://127.0.0.1:${FLOOR_PORT}`;
    const run = (baseUrl: string, duration: number) =>
      driveMix({ baseUrl, connections: settings.connections, duration, next: () => mix.next() });

    // Warm-up: a check of each feature the mix asks about for each customer (a deployment's caches
    // hold its active customers, and the decision memo their features), for at most --warm
    // seconds; then a few seconds of the mix on each server (the JIT). Memory measured after it
    // (the soak's slope) is then that of a steady state, not of caches still filling.
    sampler.phase = 'warm-up';
    const asks = settings.customers * CHECKED_FEATURES.length;
    log(
      `warm-up: a check of each of ${CHECKED_FEATURES.length} features for each of ${settings.customers} customers (at most ${settings.warm} s)`,
    );
    let warmed = 0;
    const warm = await driveMix({
      baseUrl: tessera,
      connections: settings.connections,
      duration: settings.warm,
      until: () => warmed >= asks,
      next: () => {
        const i = warmed++ % asks;
        return {
          op: 'check_boolean',
          method: 'POST',
          path: '/v1/check',
          body: JSON.stringify({
            customer_id: customerId(i % settings.customers),
            feature: CHECKED_FEATURES[Math.floor(i / settings.customers)],
          }),
          key: checkKey,
        };
      },
    });
    warmedCustomers = Math.min(
      Math.floor(warm.recorder.count('check_boolean') / CHECKED_FEATURES.length),
      settings.customers,
    );
    log(`warmed ${warmedCustomers} customers (every feature) in ${warm.seconds.toFixed(1)} s`);
    await run(tessera, 5);
    await run(bare, 3);

    const phases: PhaseFigures[] = [];
    const notes: string[] = [];
    let floor: LoadReport['floor'] = null;
    let errors = 0;
    let mixedRate = 0;
    if (settings.soak) {
      sampler.phase = 'soak';
      log(`soak: the mix at full speed for ${settings.soak} s`);
      const soak = await run(tessera, settings.soak);
      errors += soak.errors + soak.timeouts;
      phases.push(
        phaseFigures(
          'Soak: mixed load, full speed',
          soak.recorder,
          soak.seconds,
          soak.errors + soak.timeouts,
        ),
      );
    } else {
      const floorSeconds = Math.max(5, Math.round(settings.duration / 4));
      sampler.phase = 'floor';
      log(`floor before: ${floorSeconds} s`);
      const before = await run(bare, floorSeconds);
      sampler.phase = 'mixed';
      log(`mixed: ${settings.duration} s at full speed`);
      const mixed = await run(tessera, settings.duration);
      sampler.phase = 'floor';
      log(`floor after: ${floorSeconds} s`);
      const after = await run(bare, floorSeconds);
      const rate = (r: { total: number; seconds: number }) => r.total / r.seconds;
      floor = { before: rate(before), after: rate(after), mean: (rate(before) + rate(after)) / 2 };
      errors += before.errors + before.timeouts + after.errors + after.timeouts;
      errors += mixed.errors + mixed.timeouts;
      const mixedFigures = phaseFigures(
        `Mixed load, full speed (${settings.connections} connections)`,
        mixed.recorder,
        mixed.seconds,
        mixed.errors + mixed.timeouts,
      );
      mixedRate = mixedFigures.requestsPerSecond;
      phases.push(mixedFigures);

      const fixedSeconds = Math.max(10, Math.round(settings.duration / 3));
      sampler.phase = 'fixed rate';
      log(`fixed rate: ${settings.rate} req/s for ${fixedSeconds} s`);
      const recorder = new Recorder();
      const ops: Array<Call['op']> = [];
      const host = `127.0.0.1:${API_PORT}`;
      const fixed = await paced('fixed rate', {
        url: `${tessera}/v1/check`,
        connections: settings.connections,
        duration: fixedSeconds,
        rate: settings.rate,
        bodies: [],
        request: (i) => {
          const call = mix.next();
          ops[i] = call.op;
          return rawRequest(call, host);
        },
        onAnswer: (i, status, ms) => recorder.record(ops[i]!, status, ms),
      });
      errors += fixed.errors;
      phases.push(
        phaseFigures(
          `Mixed load at ${settings.rate} req/s (open loop, latency from when each request was due)`,
          recorder,
          fixedSeconds,
          fixed.errors,
        ),
      );
      if (rate(before) < rate(after) * 0.7 || rate(after) < rate(before) * 0.7)
        notes.push(
          `The bare route's throughput moved by more than 30% between before and after (${Math.round(rate(before))} and ${Math.round(rate(after))} req/s): the machine's speed changed during the run.`,
        );
    }
    const non2xx = phases.reduce((n, p) => n + p.non2xx, 0);
    const fixedPhase = settings.soak ? null : phases[1]!;
    const checkP99 = fixedPhase?.checks.p99 ?? 0;
    const ratio = floor ? mixedRate / floor.mean : 0;
    const measured = settings.soak ? ['soak'] : ['mixed', 'fixed rate'];
    const processes = [...sampler.samples.keys()].map((name) => {
      const f = processFigures(name, sampler.samples.get(name)!, measured);
      return settings.soak ? withTrends(f, sampler.samples.get(name)!, 'soak') : f;
    });
    return {
      title: settings.soak ? 'Tessera soak' : 'Tessera mixed load',
      startedAt: '',
      command: `npm run load -- ${process.argv.slice(2).join(' ')}`.trim(),
      setup: settings.soak
        ? { 'soak seconds': settings.soak, 'sampling every': '2 s' }
        : {
            'mixed run': `${settings.duration} s, autocannon, ${settings.connections} connections, closed loop`,
            'floor runs': `${Math.max(5, Math.round(settings.duration / 4))} s before and after, same requests and settings`,
            'fixed-rate phase': `${settings.rate} req/s of the mix for ${Math.max(10, Math.round(settings.duration / 3))} s (load/paced.ts, open loop)`,
          },
      floor,
      phases,
      targets: {
        checkP99AtRate: fixedPhase
          ? {
              rate: settings.rate,
              p99: checkP99,
              target: CHECK_P99_TARGET_MS,
              met: checkP99 < CHECK_P99_TARGET_MS,
            }
          : null,
        mixedOverFloor: floor
          ? {
              ratio: Math.round(ratio * 1000) / 1000,
              target: FLOOR_RATIO_TARGET,
              met: ratio >= FLOOR_RATIO_TARGET,
            }
          : null,
        errors: { count: errors + non2xx, met: errors + non2xx === 0 },
      },
      processes,
      samples: Object.fromEntries(sampler.samples),
      notes,
    };
  }

  function dbUrl(name: string): string {
    const url = new URL(settings.pgAdminUrl);
    url.pathname = `/${name}`;
    return url.toString();
  }
}

async function postgresPostmaster(adminUrl: string): Promise<number | null> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const dir = (await client.query<{ data_directory: string }>('SHOW data_directory')).rows[0]
      ?.data_directory;
    const pid = postmasterPid(dir);
    if (pid) cpuOfTree(pid);
    return pid;
  } catch {
    return null;
  } finally {
    await client.end();
  }
}

function summaryText(r: LoadReport): string {
  const lines = [`${r.title} (${r.startedAt})`];
  for (const p of r.phases) {
    lines.push(`  ${p.name}: ${p.requestsPerSecond} req/s, non-2xx ${p.non2xx}, errors ${p.errors}`);
    for (const o of [...p.ops, p.checks])
      lines.push(
        `    ${o.op.padEnd(18)} ${String(o.perSecond).padStart(9)}/s  p50 ${o.p50}  p95 ${o.p95}  p99 ${o.p99}  max ${o.max} ms`,
      );
  }
  if (r.floor)
    lines.push(
      `  bare node:http route: ${Math.round(r.floor.before)} before, ${Math.round(r.floor.after)} after req/s`,
    );
  const t = r.targets;
  if (t.mixedOverFloor)
    lines.push(
      `  mixed / floor: ${(t.mixedOverFloor.ratio * 100).toFixed(1)}% (target >= ${t.mixedOverFloor.target * 100}%: ${t.mixedOverFloor.met ? 'met' : 'NOT met'})`,
    );
  if (t.checkP99AtRate)
    lines.push(
      `  check p99 at ${t.checkP99AtRate.rate} req/s: ${t.checkP99AtRate.p99} ms (target < ${t.checkP99AtRate.target} ms: ${t.checkP99AtRate.met ? 'met' : 'NOT met'})`,
    );
  lines.push(`  errors: ${t.errors.count} (target 0: ${t.errors.met ? 'met' : 'NOT met'})`);
  for (const p of r.processes)
    lines.push(
      `  ${p.name.padEnd(15)} CPU mean ${p.cpuMean}% max ${p.cpuMax}%${p.rssMaxMb ? `  RSS ${p.rssStartMb} -> ${p.rssEndMb} MB` : ''}${p.heapEndMb !== null ? `  heap ${p.heapStartMb} -> ${p.heapEndMb} MB` : ''}${p.heapTrend ? `  heap slope ${p.heapTrend.mbPerMinute} MB/min (R² ${p.heapTrend.r2})${p.heapTrend.growing ? ' GROWING' : ''}` : ''}${p.rssTrend ? `  RSS slope ${p.rssTrend.mbPerMinute} MB/min${p.rssTrend.growing ? ' GROWING' : ''}` : ''}${p.liveHeapTrend ? `  live heap (after major GCs) slope ${p.liveHeapTrend.mbPerMinute} MB/min (R² ${p.liveHeapTrend.r2})${p.liveHeapTrend.growing ? ' GROWING' : ''}` : ''}`,
    );
  return lines.join('\n');
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`load failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    for (const child of started)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    process.exit(1);
  },
);
