import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { inject } from 'vitest';
import { type Config, loadConfig } from '../../src/config.ts';
import { createHttpServer } from '../../src/http/server.ts';
import { createApiKey } from '../../src/modules/api-keys/service.ts';
import { type Clock, ManualClock, systemClock } from '../../src/platform/clock.ts';
import { systemContext } from '../../src/platform/context.ts';
import { type Database, openEmbedded } from '../../src/platform/db.ts';
import { createLogger, type Logger } from '../../src/platform/logger.ts';
import { migrateToLatest } from '../../src/platform/migrate.ts';
import { type Runtime, startRuntime } from '../../src/runtime.ts';

export const services = {
  postgres: inject('postgresAdminUrl') !== null,
  redis: inject('redisUrl') !== null,
};

export const ADMIN_KEY = `sk_test_${'a'.repeat(8)}${randomBytes(8).toString('hex')}`;
/** The test runs' TESSERA_SECRET_KEY: apps of one file share it, and no key file is written in the working tree. */
export const SECRET_KEY = randomBytes(32).toString('hex');

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** A fresh database for one test file: a clone of the migrated template, or embedded PGlite. */
export async function createTestDatabase(): Promise<{
  database: Database;
  url: string | null;
  drop(): Promise<void>;
}> {
  const adminUrl = inject('postgresAdminUrl');
  const template = inject('templateDatabase');
  if (!adminUrl || !template) {
    // No PostgreSQL: an in-memory PGlite, migrated like the template would be.
    const database = await openEmbedded(null);
    await migrateToLatest(database.db);
    return { database, url: null, drop: () => database.close() };
  }
  const name = `tessera_t_${inject('runId')}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  for (let attempt = 0; ; attempt++) {
    try {
      await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
      break;
    } catch (err) {
      // Two files cloning the template at the same instant: try again shortly.
      if (attempt > 20) throw err;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
    }
  }
  await admin.end();
  const url = withDatabase(adminUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  pool.on('error', () => {});
  const db = new Kysely({ dialect: new PostgresDialect({ pool }) });
  const database: Database = {
    db: db as Database['db'],
    kind: 'postgres',
    url,
    pool,
    close: () => db.destroy(),
  };
  return {
    database,
    url,
    async drop() {
      await database.close();
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export interface TestAppOptions {
  clock?: Clock;
  redis?: boolean;
  config?: Partial<Config>;
  /** Share another test app's database (two API nodes on one Postgres). */
  database?: Database;
  /** Where the runtime logs (silent by default). */
  logger?: Logger;
}

export interface TestApp {
  runtime: Runtime;
  clock: Clock;
  adminKey: string;
  liveAdminKey: string;
  checkKey: string;
  redisPrefix: string | null;
  request(
    method: string,
    path: string,
    body?: unknown,
    options?: { key?: string | null; headers?: Record<string, string> },
  ): Promise<Response>;
  json<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    options?: { key?: string | null; headers?: Record<string, string> },
  ): Promise<{ status: number; body: T; headers: Headers }>;
  close(): Promise<void>;
}

/**
 * Silent, unless TESSERA_TEST_LOG_DIR is set: then debug lines go to a file of this app's own in
 * that directory, which test/helpers/log-check.ts scans for secrets when the run ends.
 */
function testLogger(): Logger {
  const dir = process.env.TESSERA_TEST_LOG_DIR;
  if (!dir) return createLogger('silent');
  const file = join(dir, `${process.pid}-${randomBytes(4).toString('hex')}.log`);
  return createLogger('debug', pino.destination({ dest: file, sync: true, mkdir: true }));
}

/** The real app, through `app.request`, on its own database (and Redis prefix when asked). */
export async function createTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const owned = options.database ? null : await createTestDatabase();
  const database = options.database ?? owned!.database;
  const redisUrl = inject('redisUrl');
  if (options.redis && !redisUrl) throw new Error('this suite needs Redis');
  const redisPrefix = options.redis ? `tessera-test:${randomBytes(6).toString('hex')}:` : null;
  const config: Config = {
    ...loadConfig({}),
    adminKey: ADMIN_KEY,
    secretKey: SECRET_KEY,
    apiKeyCacheSeconds: 0,
    redisUrl: options.redis ? (redisUrl ?? undefined) : undefined,
    redisPrefix: redisPrefix ?? 'tessera:',
    logLevel: 'silent',
    runWorkers: false,
    // Suites share one address bucket (app.request has no socket) and try bad keys on purpose;
    // the brake's own tests turn it on.
    authFailureLimit: 0,
    ...options.config,
  };
  const clock = options.clock ?? systemClock;
  const runtime = await startRuntime(config, {
    clock,
    database,
    logger: options.logger ?? testLogger(),
    workers: false,
  });
  const live = await createApiKey(systemContext(runtime.deps, 'live'), {
    name: 'live admin',
    scopes: ['admin'],
  });
  const check = await createApiKey(systemContext(runtime.deps, 'test'), {
    name: 'check only',
    scopes: ['check'],
  });

  const request: TestApp['request'] = (method, path, body, opts = {}) => {
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    const key = opts.key === undefined ? ADMIN_KEY : opts.key;
    if (key) headers.authorization = `Bearer ${key}`;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      headers['content-type'] ??= 'application/json';
      headers['content-length'] ??= String(Buffer.byteLength(payload));
    }
    return Promise.resolve(
      runtime.app.request(path, { method, headers, ...(payload !== undefined ? { body: payload } : {}) }),
    );
  };
  return {
    runtime,
    clock,
    adminKey: ADMIN_KEY,
    liveAdminKey: live.secret,
    checkKey: check.secret,
    redisPrefix,
    request,
    async json(method, path, body, opts) {
      const res = await request(method, path, body, opts);
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : null) as never, headers: res.headers };
    },
    async close() {
      if (runtime.deps.redis && redisPrefix) {
        const keys = await runtime.deps.redis.keys(`${redisPrefix}*`);
        if (keys.length) await runtime.deps.redis.del(...keys);
      }
      await runtime.close();
      await owned?.drop();
    },
  };
}

/** Two API nodes on one Postgres database and one Redis key prefix (a scaled-out install). */
export async function createTestNodes(): Promise<{ nodeA: TestApp; nodeB: TestApp; close(): Promise<void> }> {
  const shared = await createTestDatabase();
  const redisPrefix = `tessera-test:${randomBytes(6).toString('hex')}:`;
  const node = () => createTestApp({ database: shared.database, redis: true, config: { redisPrefix } });
  const nodeA = await node();
  const nodeB = await node();
  return {
    nodeA,
    nodeB,
    async close() {
      await nodeA.close();
      await nodeB.close();
      await shared.drop();
    },
  };
}

export function frozenClock(at = '2026-01-15T12:00:00.000Z'): ManualClock {
  return new ManualClock(at);
}

export { systemClock };

/** The runtime behind the real node:http server (fast paths included), on a loopback port. */
export async function serveOverHttp(runtime: Runtime): Promise<{ base: string; close(): Promise<void> }> {
  const server = createHttpServer(runtime);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
