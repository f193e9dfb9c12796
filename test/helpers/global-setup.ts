import net from 'node:net';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { migrateToLatest } from '../../src/platform/migrate.ts';

/**
 * Decides once per run which real services the suites use:
 * - PostgreSQL: DATABASE_URL, else 127.0.0.1:5432 if it answers. A template database is migrated
 *   once; each test file clones it (CREATE DATABASE ... TEMPLATE), so files never see each other's rows.
 * - Redis: REDIS_URL, else 127.0.0.1:6379 if it answers; each file uses its own key prefix.
 * Without a service, suites fall back (embedded PGlite) or skip, and say so. With CI=true a missing
 * service fails the run instead.
 */
declare module 'vitest' {
  export interface ProvidedContext {
    postgresAdminUrl: string | null;
    templateDatabase: string | null;
    runId: string;
    redisUrl: string | null;
  }
}

const TEMPLATE = `tessera_template_${process.pid}`;

function reachable(host: string, port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export default async function setup(project: TestProject) {
  const ci = process.env.CI === 'true' || process.env.CI === '1';
  let postgresAdminUrl = process.env.DATABASE_URL ?? null;
  if (!postgresAdminUrl && (await reachable('127.0.0.1', 5432)))
    postgresAdminUrl = 'postgres://postgres@127.0.0.1:5432/postgres';
  let redisUrl = process.env.REDIS_URL ?? null;
  if (!redisUrl && (await reachable('127.0.0.1', 6379))) redisUrl = 'redis://127.0.0.1:6379';

  if (ci && (!postgresAdminUrl || !redisUrl)) {
    throw new Error(
      `CI=true but ${!postgresAdminUrl ? 'PostgreSQL' : 'Redis'} is not reachable: suites that need it must fail, not skip`,
    );
  }
  const skipped: string[] = [];
  if (!postgresAdminUrl)
    skipped.push('PostgreSQL not reachable: integration suites run on embedded PGlite instead');
  if (!redisUrl) skipped.push('Redis not reachable: suites that need Redis are SKIPPED');
  for (const line of skipped) console.warn(`\n[tessera tests] ${line}`);

  let cleanup = async () => {};
  if (postgresAdminUrl) {
    const admin = new pg.Client({ connectionString: postgresAdminUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${TEMPLATE}`);
    await admin.query(`CREATE DATABASE ${TEMPLATE}`);
    await admin.end();
    const db = new Kysely({
      dialect: new PostgresDialect({
        pool: new pg.Pool({ connectionString: withDatabase(postgresAdminUrl, TEMPLATE), max: 1 }),
      }),
    });
    await migrateToLatest(db);
    await db.destroy();
    cleanup = async () => {
      const c = new pg.Client({ connectionString: postgresAdminUrl! });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${TEMPLATE} WITH (FORCE)`);
      // Databases of this run that a crashed file left behind (other runs may be going on at the same time).
      const { rows } = await c.query<{ datname: string }>(
        `SELECT datname FROM pg_database WHERE datname LIKE 'tessera_t_${process.pid}_%'`,
      );
      for (const r of rows)
        await c.query(`DROP DATABASE IF EXISTS "${r.datname}" WITH (FORCE)`).catch(() => {});
      await c.end();
    };
  }
  project.provide('postgresAdminUrl', postgresAdminUrl);
  project.provide('templateDatabase', postgresAdminUrl ? TEMPLATE : null);
  project.provide('redisUrl', redisUrl);
  project.provide('runId', String(process.pid));
  return cleanup;
}
