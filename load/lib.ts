import { type ChildProcess, spawn } from 'node:child_process';
import autocannon from 'autocannon';
import type { Redis } from 'ioredis';
import pg from 'pg';
import { type Placement, serverCommand } from './pinning.ts';

export const ADMIN_KEY = 'sk_test_benchmarkAdminKey000000000000';

export interface RunResult {
  name: string;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  max: number;
  errors: number;
  non2xx: number;
  total: number;
}

/**
 * A fresh database for a benchmark, seeded. With BENCH_SEED=reuse the seeded state is kept as a
 * template database after the first run (`<name>_seed_<customers>`) and later runs start from a
 * copy of it instead of seeding again through the API (minutes at 10,000 customers): handy when
 * measuring one change after another. `start` starts the server on the database; the result is
 * the server and how long seeding took (0 when copied).
 */
export async function seededDatabase<T>(
  adminUrl: string,
  name: string,
  customers: number,
  start: (databaseUrl: string) => Promise<T>,
  stop: (server: T) => Promise<void>,
  seed: (server: T) => Promise<void>,
  /** After seeding (before the template is kept): e.g. let a worker dispatch the seed's outbox. */
  settle: (databaseUrl: string) => Promise<void> = async () => {},
  reuse = process.env.BENCH_SEED === 'reuse',
): Promise<{ server: T; databaseUrl: string; seedSeconds: number }> {
  const template = `${name}_seed_${customers}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [template]);
    const databaseUrl = urlOf(adminUrl, name);
    await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    if (reuse && found.rowCount === 1) {
      await client.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
      await vacuum(databaseUrl);
      return { server: await start(databaseUrl), databaseUrl, seedSeconds: 0 };
    }
    await client.query(`CREATE DATABASE ${name}`);
    const seeding = await start(databaseUrl);
    const began = Date.now();
    await seed(seeding);
    await settle(databaseUrl);
    await vacuum(databaseUrl);
    const seedSeconds = (Date.now() - began) / 1000;
    if (!reuse) return { server: seeding, databaseUrl, seedSeconds };
    // A template must have no connections while it is copied: stop the server, keep the copy.
    await stop(seeding);
    await client.query(`DROP DATABASE IF EXISTS ${template} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${template} TEMPLATE ${name}`);
    return { server: await start(databaseUrl), databaseUrl, seedSeconds };
  } finally {
    await client.end();
  }
}

/**
 * VACUUM ANALYZE: dispatching the seed's outbox leaves every outbox row dead once, and a copy made
 * from a template starts with no statistics, so autovacuum would not know to clean it. Until it
 * does, each poll of the dispatcher walks some 40,000 dead entries of the pending-events index
 * (35 ms of PostgreSQL CPU, several times a second, on the servers' core).
 */
async function vacuum(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query('VACUUM ANALYZE');
  } finally {
    await client.end();
  }
}

function urlOf(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * Node flags of every server a benchmark starts, Tessera's and the bare route's alike: the ones
 * `npm start` uses (package.json), so the figures are of the server as shipped. BENCH_NODE_EXTRA
 * adds more (space-separated), for experiments.
 */
const SERVER_NODE_FLAGS = [
  '--max-semi-space-size=32',
  '--no-allocation-site-pretenuring',
  '--no-memory-reducer',
  ...(process.env.BENCH_NODE_EXTRA ?? '').split(' ').filter(Boolean),
];

/** A TypeScript entry point under tsx with the servers' Node flags, on the server CPUs when pinned. */
function spawnServer(args: string[], env: Record<string, string>, pin: Placement | null): ChildProcess {
  const [command, commandArgs] = serverCommand(pin, [...SERVER_NODE_FLAGS, '--import', 'tsx', ...args]);
  return spawn(command, commandArgs, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
}

/** Starts a server process and resolves with its port once it answers /healthz. */
export async function startProcess(
  args: string[],
  env: Record<string, string>,
  port: number,
  pin: Placement | null = null,
): Promise<ChildProcess> {
  const child = spawnServer(args, { ...env, PORT: String(port) }, pin);
  child.stdout?.on('data', () => {});
  const started = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited with ${child.exitCode}`);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      if (res.ok) return child;
    } catch {
      // not up yet
    }
    if (Date.now() - started > 60_000) throw new Error(`${args.join(' ')} did not start`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `tessera worker`: no HTTP port, so wait for its start-up line. */
export async function startWorker(
  env: Record<string, string>,
  pin: Placement | null = null,
): Promise<ChildProcess> {
  const child = spawnServer(['src/main.ts', 'worker'], { ...env, LOG_LEVEL: 'info' }, pin);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the worker did not start')), 60_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('worker started')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`the worker exited with ${code}`)));
  });
  return child;
}

/**
 * Waits until the outbox has no undelivered events. Seeding leaves tens of thousands (customer,
 * subscription and catalog changes); a worker dispatching them during a measured run competes for
 * the CPU and, through the invalidations it publishes (`catalog.changed` drops every cached
 * snapshot), sends the API node back to the database. Resolves with the seconds it waited.
 */
export async function outboxDrained(databaseUrl: string, timeoutMs = 600_000): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const began = Date.now();
  try {
    for (;;) {
      const { rows } = await client.query<{ n: string }>(
        'SELECT count(*) AS n FROM outbox WHERE dispatched_at IS NULL',
      );
      if (Number(rows[0]?.n ?? 0) === 0) return (Date.now() - began) / 1000;
      if (Date.now() - began > timeoutMs) throw new Error(`the outbox still had ${rows[0]?.n} events`);
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await client.end();
  }
}

/** A `settle` for `seededDatabase`: a worker dispatches the seed's outbox, then stops. */
export function drainWith(env: Record<string, string>, pin: Placement | null = null) {
  return async (databaseUrl: string): Promise<void> => {
    const worker = await startWorker({ ...env, DATABASE_URL: databaseUrl }, pin);
    try {
      await outboxDrained(databaseUrl);
    } finally {
      await stopProcess(worker);
    }
  };
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
  if (child.exitCode === null) child.kill('SIGKILL');
}

export async function api(port: number, method: string, path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${path} -> ${res.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/** Runs `fn` over items with at most `concurrency` in flight. */
export async function pool<T>(
  items: T[],
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) {
        const item = items[next++]!;
        await fn(item);
      }
    }),
  );
}

export async function drive(
  name: string,
  options: {
    url: string;
    connections: number;
    duration: number;
    /** A fresh body per request (built as it is sent). */
    body?: () => string;
    /** Or bodies made beforehand, sent in turn (no JSON work per request in the client). */
    bodies?: string[];
    key?: string;
  },
): Promise<RunResult> {
  // Bodies are handed out in turn as requests are sent (one shared cursor): the client's work per
  // request is the same for every server driven with the same bodies.
  let next = 0;
  const bodies = options.bodies;
  const make = bodies ? () => bodies[next++ % bodies.length]! : options.body;
  const requests = make
    ? [
        {
          method: 'POST' as const,
          setupRequest: (req: autocannon.Request) => {
            req.body = make();
            return req;
          },
        },
      ]
    : null;
  // Latencies kept by hand at full precision (autocannon's histogram rounds to whole
  // milliseconds, too coarse for a p99 near a few ms), 2xx answers only as autocannon does.
  const latencies: number[] = [];
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        method: 'POST',
        connections: options.connections,
        duration: options.duration,
        headers: {
          'content-type': 'application/json',
          ...(options.key ? { authorization: `Bearer ${options.key}` } : {}),
        },
        ...(requests ? { requests } : { body: '{}' }),
      },
      (err, done) => (err ? reject(err) : resolve(done)),
    );
    instance.on('response', (_client, status, _bytes, ms) => {
      if (status >= 200 && status < 300) latencies.push(ms);
    });
  });
  const { p50, p99, max } = percentiles(latencies);
  return {
    name,
    requestsPerSecond: result.requests.average,
    p50,
    p99,
    max,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    total: result.requests.total,
  };
}

/** p50, p99 and max of latencies in ms, to a hundredth of a millisecond. */
export function percentiles(latencies: ArrayLike<number>): { p50: number; p99: number; max: number } {
  const sorted = Float64Array.from(latencies).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const round = (ms: number) => Math.round(ms * 100) / 100;
  return { p50: round(at(0.5)), p99: round(at(0.99)), max: round(sorted[sorted.length - 1] ?? 0) };
}

export function table(rows: RunResult[]): string {
  const head =
    '| run | req/s | p50 ms | p99 ms | max ms | errors | non-2xx | requests |\n|---|---:|---:|---:|---:|---:|---:|---:|';
  const lines = rows.map(
    (r) =>
      `| ${r.name} | ${Math.round(r.requestsPerSecond)} | ${r.p50} | ${r.p99} | ${r.max} | ${r.errors} | ${r.non2xx} | ${r.total} |`,
  );
  return [head, ...lines].join('\n');
}

/** Deletes every Redis key under a prefix (SCAN, then UNLINK). */
export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}
