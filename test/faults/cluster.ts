import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { loadConfig } from '../../src/config.ts';
import type { RedisUsageStore } from '../../src/modules/metering/redis/store.ts';
import { createLogger } from '../../src/platform/logger.ts';
import { startRuntime } from '../../src/runtime.ts';
import { type OwnPostgres, startOwnPostgres } from '../helpers/own-postgres.ts';
import { type OwnRedis, type OwnRedisOptions, startOwnRedis } from '../helpers/own-redis.ts';
import { freePort, waitUntilUp } from '../helpers/processes.ts';

const run = promisify(execFile);

/**
 * Whether this machine can run the fault suite: redis-server and PostgreSQL's initdb/pg_ctl. With
 * CI=true a missing one fails the suite (`requireFaultTools` throws) instead of skipping it.
 */
export function faultToolsMissing(): string | null {
  const missing: string[] = [];
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    missing.push('redis-server');
  }
  try {
    const bin = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
    execFileSync(path.join(bin, 'pg_ctl'), ['--version'], { stdio: 'ignore' });
    execFileSync(path.join(bin, 'initdb'), ['--version'], { stdio: 'ignore' });
  } catch {
    missing.push('initdb/pg_ctl (pg_config --bindir)');
  }
  if (missing.length === 0) return null;
  const why = `the fault suite needs ${missing.join(' and ')}`;
  if (process.env.CI === 'true' || process.env.CI === '1') throw new Error(`CI=true but ${why}`);
  console.warn(`\n[tessera faults] SKIPPED: ${why}`);
  return why;
}

export const ADMIN = `sk_test_${randomBytes(12).toString('hex')}`;

export interface Proc {
  child: ChildProcess;
  base: string;
  /** What the process wrote to stderr (its warn and error log lines), for failure messages. */
  output(): string;
  exited(): Promise<void>;
  alive(): boolean;
}

/**
 * One deployment of the test's own: a PostgreSQL and a Redis on spare ports that the test may
 * stop, restart and wipe, and `tessera serve` / `tessera worker` processes spawned against them.
 */
export interface Cluster {
  pg: OwnPostgres;
  redis: OwnRedis;
  databaseUrl: string;
  env: NodeJS.ProcessEnv;
  serve(extra?: NodeJS.ProcessEnv): Promise<Proc>;
  worker(extra?: NodeJS.ProcessEnv): Proc;
  /** One query on a connection of its own (the server may have restarted since the last). */
  query<T extends pg.QueryResultRow>(sql: string, params?: unknown[]): Promise<T[]>;
  /** `tessera usage <args>` as a one-off process: what it printed, whatever its exit code. */
  usage(...args: string[]): Promise<string>;
  /**
   * What `tessera usage verify` does, in this process (a spawned one costs seconds): flushes what
   * has waited over a minute, then compares every counter with the ledger. Returns the differences.
   */
  verify(): Promise<unknown[]>;
  close(): Promise<void>;
}

export async function startCluster(options: { redis?: OwnRedisOptions } = {}): Promise<Cluster> {
  // Commits reach the WAL before they are acknowledged (the helper's default turns that off for
  // speed): a crash of the server (`stop('immediate')`) must lose no committed ledger row.
  const [own, redis] = await Promise.all([
    startOwnPostgres({ settings: { synchronous_commit: 'on' } }),
    startOwnRedis(options.redis),
  ]);
  await own.createDatabase('tessera');
  const databaseUrl = own.urlFor('tessera');
  const dataDir = mkdtempSync(path.join(tmpdir(), 'tessera-faults-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_URL: databaseUrl,
    REDIS_URL: redis.url,
    REDIS_PREFIX: 'tessera:',
    TESSERA_ADMIN_KEY: ADMIN,
    TESSERA_SECRET_KEY: randomBytes(32).toString('hex'),
    TESSERA_DATA_DIR: dataDir,
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    RUN_WORKERS: 'false',
    TESSERA_AUTH_FAILURE_LIMIT: '0',
  };
  const children: ChildProcess[] = [];

  const spawnTessera = (command: string, extra: NodeJS.ProcessEnv, base: string): Proc => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', command], {
      env: { ...env, ...extra },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    children.push(child);
    let err = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      err = (err + chunk.toString()).slice(-20_000);
    });
    const done = new Promise<void>((r) => child.once('exit', () => r()));
    return {
      child,
      base,
      output: () => err,
      exited: () => done,
      alive: () => child.exitCode === null && child.signalCode === null,
    };
  };

  const cluster: Cluster = {
    pg: own,
    redis,
    databaseUrl,
    env,
    async serve(extra = {}) {
      const port = await freePort();
      const proc = spawnTessera('serve', { PORT: String(port), ...extra }, `http://127.0.0.1:${port}`);
      await waitUntilUp(proc.base, proc.output);
      return proc;
    },
    worker(extra = {}) {
      return spawnTessera('worker', extra, '');
    },
    async query(sql, params) {
      const client = new pg.Client({ connectionString: databaseUrl });
      await client.connect();
      try {
        return (await client.query(sql, params)).rows;
      } finally {
        await client.end();
      }
    },
    async usage(...args) {
      try {
        const { stdout } = await run(process.execPath, ['--import', 'tsx', 'src/main.ts', 'usage', ...args], {
          env,
          timeout: 60_000,
        });
        return stdout;
      } catch (err) {
        // `usage verify` exits 1 when a counter differs: its report is still the answer.
        const { stdout, stderr } = err as { stdout?: string; stderr?: string };
        return `${stdout ?? ''}${stderr ?? ''}`;
      }
    },
    async verify() {
      const config = loadConfig(env as Record<string, string>);
      const runtime = await startRuntime(config, { workers: false, logger: createLogger('silent') });
      try {
        const store = runtime.metering.store;
        if (store.kind !== 'redis') throw new Error('no Redis store');
        await runtime.metering.flush({ claimIdleMs: 60_000 });
        const report = await (store as RedisUsageStore).verify(new Date());
        return report?.mismatches ?? [];
      } finally {
        await runtime.close();
      }
    },
    async close() {
      for (const child of children)
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await Promise.all(
        children.map((c) =>
          c.exitCode !== null || c.signalCode !== null
            ? undefined
            : new Promise<void>((r) => c.once('exit', () => r())),
        ),
      );
      await redis.stop();
      await own.destroy();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return cluster;
}

/** An admin call; resolves to the Response (never throws for an HTTP status). */
export function call(base: string, method: string, route: string, body?: unknown): Promise<Response> {
  return fetch(`${base}${route}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
}

export async function expectStatus(res: Promise<Response> | Response, status: number): Promise<unknown> {
  const r = await res;
  const text = await r.text();
  if (r.status !== status) throw new Error(`expected ${status}, got ${r.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

/**
 * The catalog every fault scenario uses: `calls` (metered, a hard monthly limit per plan), `sso`
 * (boolean), and plans `big` (1e9 calls) and `tiny` (10 calls).
 */
export async function seedCatalog(base: string): Promise<void> {
  await expectStatus(
    call(base, 'POST', '/v1/features', { key: 'calls', name: 'Calls', type: 'metered' }),
    201,
  );
  await expectStatus(call(base, 'POST', '/v1/features', { key: 'sso', name: 'SSO', type: 'boolean' }), 201);
  for (const [key, limit] of [
    ['big', 1e9],
    ['tiny', 10],
  ] as const) {
    await expectStatus(
      call(base, 'POST', '/v1/plans', {
        key,
        name: key,
        entitlements: [
          { feature: 'calls', limit, reset: 'month', overage: 'deny' },
          { feature: 'sso', enabled: true },
        ],
      }),
      201,
    );
  }
}

export async function subscribe(base: string, customer: string, plan: string): Promise<void> {
  await expectStatus(call(base, 'PUT', `/v1/customers/${customer}`, { name: customer }), 201);
  await expectStatus(call(base, 'POST', `/v1/customers/${customer}/subscriptions`, { plan }), 201);
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it is true; throws with `what` after `timeoutMs`. */
export async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const started = Date.now();
  for (;;) {
    try {
      if (await probe()) return;
    } catch {
      // not yet
    }
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const started = Date.now();
/** With FAULTS_TRACE=1, a line per step on stderr with the seconds since the file started. */
export function trace(what: string): void {
  if (process.env.FAULTS_TRACE)
    process.stderr.write(`[faults ${((Date.now() - started) / 1000).toFixed(1)}s] ${what}\n`);
}

export const CUSTOMERS = ['c1', 'c2', 'c3', 'c4'];
export const OVER = 'over';

export interface Deployment {
  cluster: Cluster;
  server: Proc;
  worker: Proc;
}

/**
 * A cluster with one API process (`RUN_WORKERS=false`) and one worker, the catalog seeded, big
 * customers c1-c4 and the customer `over`, who has used all 10 of its calls (in the ledger already).
 */
export async function deploy(
  options: { redis?: OwnRedisOptions; serve?: NodeJS.ProcessEnv } = {},
): Promise<Deployment> {
  const cluster = await startCluster(options);
  trace('cluster up');
  const server = await cluster.serve(options.serve);
  trace('server up');
  const worker = cluster.worker();
  await seedCatalog(server.base);
  for (const c of CUSTOMERS) await subscribe(server.base, c, 'big');
  await subscribe(server.base, OVER, 'tiny');
  await expectStatus(
    call(server.base, 'POST', '/v1/usage', {
      customer_id: OVER,
      feature: 'calls',
      value: 10,
      idempotency_key: 'fill',
    }),
    200,
  );
  trace('seeded');
  await until('the first events in the ledger', async () => {
    const [row] = await cluster.query<{ n: string }>('SELECT count(*)::text AS n FROM usage_events');
    return row!.n === '1';
  });
  trace('first events flushed');
  return { cluster, server, worker };
}

/** The over-quota customer is denied, by a check and by usage, and its count is still 10. */
export async function expectOverQuotaDenied(server: Proc): Promise<void> {
  const check = (await expectStatus(
    call(server.base, 'POST', '/v1/check', { customer_id: OVER, feature: 'calls' }),
    200,
  )) as { allowed: boolean; reason: string; used: number };
  if (check.allowed || check.reason !== 'limit_exceeded' || check.used !== 10)
    throw new Error(`the over-quota customer's check: ${JSON.stringify(check)}`);
  const usage = (await expectStatus(
    call(server.base, 'POST', '/v1/usage', {
      customer_id: OVER,
      feature: 'calls',
      idempotency_key: `after-${randomBytes(4).toString('hex')}`,
    }),
    200,
  )) as { accepted: boolean; reason: string };
  if (usage.accepted || usage.reason !== 'limit_exceeded')
    throw new Error(`the over-quota customer's usage: ${JSON.stringify(usage)}`);
}
