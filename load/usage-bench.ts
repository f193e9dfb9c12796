/**
 * `npm run bench -- usage`: Tessera on real PostgreSQL and Redis, 10,000 customers. autocannon
 * drives single events (random customer, unique idempotency keys), then batches of 100, beside
 * the same run's bare Hono route and a raw ioredis EVALSHA loop of the same Lua script. After the
 * runs it waits for the flusher and checks that the ledger's sums equal Redis's counters.
 */
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import { Redis } from 'ioredis';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { ledgerHead } from '../src/modules/metering/ledger/lines.ts';
import { UsageKeys } from '../src/modules/metering/redis/keys.ts';
import { loadScripts, SCRIPTS } from '../src/modules/metering/redis/scripts.ts';
import {
  type ConsumeCall,
  manyCall,
  RedisUsageStore,
  SHARED_STREAM_SLOT,
} from '../src/modules/metering/redis/store.ts';
import { compareWithLedger } from '../src/modules/metering/redis/verify.ts';
import type { UsageEvent } from '../src/modules/metering/store.ts';
import { systemClock } from '../src/platform/clock.ts';
import type { DB } from '../src/platform/db-types.ts';
import { createLogger } from '../src/platform/logger.ts';
import { type BenchSettings, seedCatalog, seedCustomers } from './check-bench.ts';
import { cpuOfPid, machineCpu, ownCpu, redisCpu } from './cpu.ts';
import {
  ADMIN_KEY,
  api,
  deletePrefix,
  drainWith,
  drive,
  outboxDrained,
  type RunResult,
  seededDatabase,
  startProcess,
  startWorker,
  stopProcess,
} from './lib.ts';

const PREFIX = 'tessera-bench-usage:';
const RAW_PREFIX = 'tessera-bench-raw:';
const BATCH = 100;

/**
 * The Lua script alone (CONSUME_MANY, a single event a call unless `many`), with the same keys and
 * arguments the server builds: `batch` 1 keeps 50
 * single calls in flight; a larger batch sends explicit pipelines of that many calls, 4 at a time.
 */
async function rawEvalLoop(
  redis: Redis,
  customers: number,
  seconds: number,
  batch: number,
  /** Send each batch as one CONSUME_MANY call (what the server does) instead of a pipeline. */
  many = false,
): Promise<RunResult> {
  const keys = new UsageKeys(RAW_PREFIX);
  const start = new Date(Date.UTC(2026, 0, 1));
  const period = { start, end: new Date(Date.UTC(2026, 1, 1)) };
  const run = randomBytes(4).toString('hex');
  const terms = `sum|1000|deny|${35 * 86_400_000}|${8 * 86_400_000}|80,100|${+period.end}|${+start}|100000|`;
  const stream = keys.streamOfSlot(SHARED_STREAM_SLOT);
  let n = 0;
  const call = (): ConsumeCall => {
    const customer = `cust-${Math.floor(Math.random() * customers)}`;
    const base = keys.customer('test', customer);
    const id = `${run}-${n++}`;
    const occurredAt = new Date();
    const event: UsageEvent = {
      customerId: customer,
      feature: 'api_calls',
      idempotencyKey: id,
      value: 1,
      member: null,
      occurredAt,
      terms: { aggregation: 'sum', limit: 1000, overage: 'deny', thresholds: [80, 100], grants: [], period },
    };
    return {
      keys: [
        keys.counter(base, 'api_calls', period),
        keys.credit(base, 'api_calls'),
        keys.idempotency(base, id),
        keys.holds(base, 'api_calls', period),
      ],
      now: occurredAt.getTime(),
      terms,
      value: 1,
      member: '',
      head: ledgerHead('test', event, null),
      slot: SHARED_STREAM_SLOT,
    };
  };
  const latencies: number[] = [];
  const until = Date.now() + seconds * 1000;
  const worker = async () => {
    while (Date.now() < until) {
      const t = performance.now();
      if (batch === 1) {
        const [k, a] = manyCall([call()], stream);
        await redis.evalsha(SCRIPTS.consumeMany.sha, k.length, ...k, ...a);
      } else if (many) {
        const [k, a] = manyCall(Array.from({ length: batch }, call), stream);
        await redis.evalsha(SCRIPTS.consumeMany.sha, k.length, ...k, ...a);
      } else {
        const pipeline = redis.pipeline();
        for (let i = 0; i < batch; i++) {
          const [k, a] = manyCall([call()], stream);
          pipeline.evalsha(SCRIPTS.consumeMany.sha, k.length, ...k, ...a);
        }
        await pipeline.exec();
      }
      latencies.push(performance.now() - t);
    }
  };
  const began = Date.now();
  await Promise.all(Array.from({ length: batch === 1 ? 50 : 4 }, worker));
  latencies.sort((a, b) => a - b);
  const at = (q: number) => Math.round((latencies[Math.floor(q * (latencies.length - 1))] ?? 0) * 100) / 100;
  const calls =
    batch === 1
      ? 'single calls, 50 in flight'
      : many
        ? `CONSUME_MANY calls of ${batch} events, 4 in flight`
        : `pipelines of ${batch}, 4 in flight`;
  return {
    name: `raw ioredis EVALSHA (${many ? 'batched script' : 'same script'}; ${calls})`,
    requestsPerSecond: n / ((Date.now() - began) / 1000) / batch,
    p50: at(0.5),
    p99: at(0.99),
    max: at(1),
    errors: 0,
    non2xx: 0,
    total: latencies.length,
  };
}

/**
 * CPU per event of each process over a run: `start()` before it, then the returned function with
 * the number of events the run sent.
 */
function cpuMeter(redis: Redis, api: number, worker: number | null) {
  const read = async () => ({
    api: cpuOfPid(api),
    worker: worker === null ? 0 : cpuOfPid(worker),
    redis: await redisCpu(redis),
    client: ownCpu(),
    machine: machineCpu(),
  });
  return {
    async start() {
      const before = await read();
      return async (events: number): Promise<string> => {
        const after = await read();
        const d = (k: keyof typeof before) => (after[k] - before[k]) / events;
        const rest = d('machine') - d('api') - d('worker') - d('redis') - d('client');
        const parts = [
          `API ${d('api').toFixed(1)}`,
          ...(worker === null ? [] : [`flusher ${d('worker').toFixed(1)}`]),
          `Redis ${d('redis').toFixed(1)}`,
          `load generator ${d('client').toFixed(1)}`,
          `rest ${rest.toFixed(1)}`,
        ];
        return `${parts.join(', ')} (all ${d('machine').toFixed(1)})`;
      };
    },
  };
}

export async function runUsageBench(s: BenchSettings): Promise<string> {
  const redis = new Redis(s.redisUrl);
  await deletePrefix(redis, PREFIX);
  const env = {
    REDIS_URL: s.redisUrl,
    REDIS_PREFIX: PREFIX,
    TESSERA_ADMIN_KEY: ADMIN_KEY,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
  };
  const port = 3711;
  const barePort = 3712;
  // By default the API node only serves and a `tessera worker` process flushes (the scale-out
  // topology); BENCH_USAGE_WORKER=inline runs the flusher inside the API process instead.
  const inline = process.env.BENCH_USAGE_WORKER === 'inline';
  // No CPU pinning here (unlike the check benchmark): the system under test is four busy
  // processes (API, Redis, the flusher, PostgreSQL), and one core for all of them measured far
  // less than letting the kernel place them (docs/benchmarks.md).
  const { server, databaseUrl, seedSeconds } = await seededDatabase(
    s.pgAdminUrl,
    'tessera_bench_usage',
    s.customers,
    (url) =>
      startProcess(
        ['src/main.ts', 'serve'],
        { ...env, DATABASE_URL: url, RUN_WORKERS: String(inline) },
        port,
      ),
    stopProcess,
    async () => {
      await seedCatalog(port);
      await seedCustomers(port, s.customers);
    },
    drainWith(env),
  );
  const worker = inline ? null : await startWorker({ ...env, DATABASE_URL: databaseUrl });
  await outboxDrained(databaseUrl);
  const bare = await startProcess(['load/bare-server.ts'], {}, barePort);
  const db = new Kysely<DB>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: databaseUrl, max: 4 }) }),
  });
  try {
    const key = (
      (await api(port, 'POST', '/v1/api-keys', {
        name: 'bench',
        scopes: ['check'],
        ...benchRateLimit(),
      })) as { secret: string }
    ).secret;
    const run = randomBytes(4).toString('hex');
    let n = 0;
    const event = () => ({
      customer_id: `cust-${Math.floor(Math.random() * s.customers)}`,
      feature: 'api_calls',
      value: 1,
      idempotency_key: `${run}-${n++}`,
    });
    const single = () => JSON.stringify(event());
    const batch = () => JSON.stringify({ events: Array.from({ length: BATCH }, event) });
    const usageUrl = `http://127.0.0.1:${port}/v1/usage`;
    const batchUrl = `${usageUrl}/batch`;
    // Warm every customer's snapshot, then the JIT of both servers.
    for (let i = 0; i < s.customers; i += BATCH) {
      const events = Array.from({ length: Math.min(BATCH, s.customers - i) }, (_, j) => ({
        ...event(),
        customer_id: `cust-${i + j}`,
      }));
      await api(port, 'POST', '/v1/usage/batch', { events });
    }
    await drive('warm-up', { url: usageUrl, connections: s.connections, duration: 3, body: single, key });
    await drive('warm-up', { url: batchUrl, connections: s.connections, duration: 2, body: batch, key });
    // The bare route gets the same requests, made the same way, as the single-event run: the
    // client's work per request is equal, so the ratio compares the servers.
    await drive('warm-up', {
      url: `http://127.0.0.1:${barePort}/bare`,
      connections: s.connections,
      duration: 3,
      body: single,
      key,
    });

    // The bare route runs before and after the single-event run, which is compared with their
    // mean: that cancels a steady drift of the machine's speed (as in the check benchmark).
    const runBare = (when: string) =>
      drive(`bare Hono route (constant JSON), ${when}`, {
        url: `http://127.0.0.1:${barePort}/bare`,
        connections: s.connections,
        duration: s.duration,
        body: single,
        key,
      });
    const bareBefore = await runBare('before');
    const cpu = cpuMeter(redis, server.pid!, worker?.pid ?? null);
    let meter = await cpu.start();
    const singleRun = await drive('POST /v1/usage (1 event)', {
      url: usageUrl,
      connections: s.connections,
      duration: s.duration,
      body: single,
      key,
    });
    const singleCpu = await meter(singleRun.total);
    const bareAfter = await runBare('after');
    const bareRate = (bareBefore.requestsPerSecond + bareAfter.requestsPerSecond) / 2;
    meter = await cpu.start();
    const batchRun = await drive(`POST /v1/usage/batch (${BATCH} events)`, {
      url: batchUrl,
      connections: s.connections,
      duration: s.duration,
      body: batch,
      key,
    });
    const batchCpu = await meter(batchRun.total * BATCH);
    // The flusher (BullMQ) catches up; wait until every stream is empty, then compare.
    const store = new RedisUsageStore(redis, db, PREFIX, systemClock, createLogger('silent'));
    const flushStart = Date.now();
    let pending = Number.POSITIVE_INFINITY;
    while (pending > 0 && Date.now() - flushStart < 300_000) {
      const slots = await redis.smembers(store.keys.slots);
      const pipeline = redis.pipeline();
      for (const slot of slots) pipeline.xlen(store.keys.streamOfSlot(Number(slot)));
      pending = ((await pipeline.exec()) ?? []).reduce((sum, [, len]) => sum + Number(len), 0);
      if (pending > 0) await new Promise((r) => setTimeout(r, 500));
    }
    const flushSeconds = (Date.now() - flushStart) / 1000;
    const verified = await compareWithLedger(store, new Date());
    const ledger = await db
      .selectFrom('usage_events' as never)
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .executeTakeFirstOrThrow();

    // The script alone, once the flusher is idle.
    await loadScripts(redis);
    await redis.config('RESETSTAT');
    const raw = await rawEvalLoop(redis, s.customers, Math.min(10, s.duration), 1);
    const rawBatch = await rawEvalLoop(redis, s.customers, Math.min(10, s.duration), BATCH);
    const stats = (await redis.info('commandstats')).match(/cmdstat_evalsha:.*usec_per_call=([\d.]+)/);
    const scriptMicros = Number(stats?.[1] ?? Number.NaN);
    await redis.config('RESETSTAT');
    const rawMany = await rawEvalLoop(redis, s.customers, Math.min(10, s.duration), BATCH, true);
    const manyStats = (await redis.info('commandstats')).match(/cmdstat_evalsha:.*usec_per_call=([\d.]+)/);
    const manyMicros = Number(manyStats?.[1] ?? Number.NaN) / BATCH;
    await deletePrefix(redis, RAW_PREFIX);

    const events = (r: RunResult, per: number) => r.requestsPerSecond * per;
    const rows: Array<[RunResult, number]> = [
      [bareBefore, 1],
      [bareAfter, 1],
      [singleRun, 1],
      [batchRun, BATCH],
      [raw, 1],
      [rawBatch, BATCH],
      [rawMany, BATCH],
    ];
    const lines = rows.map(
      ([r, per]) =>
        `| ${r.name} | ${Math.round(r.requestsPerSecond)} | ${Math.round(events(r, per))} | ${r.p50} | ${r.p99} | ${r.max} | ${r.errors} | ${r.non2xx} | ${r.total} | ${((r.requestsPerSecond / bareRate) * 100).toFixed(1)}% |`,
    );
    const singleRatio = singleRun.requestsPerSecond / bareRate;
    const singleVsRaw = singleRun.requestsPerSecond / raw.requestsPerSecond;
    const batchVsRaw = events(batchRun, BATCH) / events(rawMany, BATCH);
    const batchEvents = events(batchRun, BATCH);
    return [
      `## POST /v1/usage (${new Date().toISOString()})`,
      '',
      `Machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}; no CPU pinning. ${s.customers} customers over 3 plans (api_calls: 1,000/month deny, 100,000/month allow, unlimited), ${seedSeconds > 0 ? `seeded through the API in ${seedSeconds.toFixed(1)} s` : 'copied from the seeded template of an earlier run (BENCH_SEED=reuse)'}. autocannon, ${s.connections} connections, ${s.duration} s per run, random customer per event, unique idempotency keys (the bare route gets the same requests, made the same way), after a warm-up; each raw loop runs ${Math.min(10, s.duration)} s; the raw rows' req/s are calls (or pipelines of ${BATCH}) per second.`,
      '',
      '| run | req/s | events/s | p50 ms | p99 ms | max ms | errors | non-2xx | requests | req/s vs bare (mean) |',
      '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
      ...lines,
      '',
      `single event / bare throughput: **${(singleRatio * 100).toFixed(1)}%** (target >= 35%; bare = mean of the runs before and after, ${Math.round(bareRate)} req/s); single event / raw single EVALSHA: ${(singleVsRaw * 100).toFixed(1)}%; batch / raw CONSUME_MANY calls: ${(batchVsRaw * 100).toFixed(1)}%; the script costs Redis ${scriptMicros} µs per call (commandstats during the raw runs), a ceiling of ${Math.round(1e6 / scriptMicros)} events/s on one Redis core (batched: ${manyMicros.toFixed(2)} µs per event, ${Math.round(1e6 / manyMicros)} events/s); batch: **${Math.round(batchEvents)} events/s** (target >= 50,000); errors ${singleRun.errors + singleRun.non2xx + batchRun.errors + batchRun.non2xx} (target 0).`,
      `CPU per event during the runs (µs; API, flusher from /proc, Redis from its INFO, the load generator is this process, the rest is PostgreSQL and anything else on the machine): single events ${singleCpu}; batches ${batchCpu}. The least any implementation spends per batched event on this machine is measured by \`npm run bench -- floor\`.`,
      `Flusher: ${inline ? 'inside the API process' : 'a separate `tessera worker` process (API node with RUN_WORKERS=false)'}. Ledger: ${ledger.n} events; flusher drained the streams ${flushSeconds.toFixed(1)} s after the last run (pending left: ${pending}); ${verified.checked} counters compared with ledger sums, mismatches: **${verified.mismatches.length}**.`,
    ].join('\n');
  } finally {
    await stopProcess(server);
    if (worker) await stopProcess(worker);
    await stopProcess(bare);
    await db.destroy();
    redis.disconnect();
  }
}

/** BENCH_RATE_LIMIT=N gives the bench key a rate limit (one high enough never to refuse measures the bucket's cost). */
function benchRateLimit(): { rate_limit_per_second?: number } {
  const limit = process.env.BENCH_RATE_LIMIT;
  return limit ? { rate_limit_per_second: Number(limit) } : {};
}
