import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { Kysely, PostgresDialect, type Transaction } from 'kysely';
import pg from 'pg';
import type { Config } from '../config.ts';
import type { DB } from './db-types.ts';

export type { DB } from './db-types.ts';
export type Db = Kysely<DB>;
export type Tx = Transaction<DB>;
/** Either the pool-backed database or an open transaction: repo reads accept both. */
export type Executor = Kysely<DB>;

// Parsers chosen on purpose: int8 (bigint) holds versions, counters and chain indexes that stay far
// below 2^53, so they come back as numbers; numeric holds usage amounts and comes back as a number too.
pg.types.setTypeParser(20, (v) => Number(v));
pg.types.setTypeParser(1700, (v) => Number(v));

export interface Database {
  db: Db;
  /** 'postgres' for a real server, 'embedded' for PGlite. */
  kind: 'postgres' | 'embedded';
  /** The connection string the pool uses (for the embedded server: its loopback socket). */
  url: string;
  /** The pool under `db`, for what Kysely cannot say (COPY). */
  pool: pg.Pool;
  close(): Promise<void>;
}

export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'databasePoolSize' | 'dataDir'>,
): Promise<Database> {
  if (config.databaseUrl) {
    return fromPool(
      new pg.Pool({ connectionString: config.databaseUrl, max: config.databasePoolSize }),
      'postgres',
      config.databaseUrl,
    );
  }
  return openEmbedded(path.resolve(config.dataDir, 'pgdata'));
}

/**
 * The read replica named by DATABASE_REPLICA_URL, or null (none configured, or embedded mode).
 * Its sessions are read-only, and a connection that cannot be made within two seconds fails, so a
 * replica that went away costs a cache miss little before it falls back to the primary.
 */
export function openReplica(
  config: Pick<Config, 'databaseUrl' | 'databaseReplicaUrl' | 'databasePoolSize'>,
): Database | null {
  if (!config.databaseUrl || !config.databaseReplicaUrl) return null;
  const pool = new pg.Pool({
    connectionString: config.databaseReplicaUrl,
    max: config.databasePoolSize,
    connectionTimeoutMillis: 2_000,
    options: '-c default_transaction_read_only=on',
  });
  return fromPool(pool, 'postgres', config.databaseReplicaUrl);
}

/**
 * Embedded mode: PGlite, served over the Postgres wire protocol on a loopback port, so the same
 * `pg` driver, Kysely dialect and SQL serve both modes. PGlite is single-connection, so the pool
 * holds exactly one client and transactions queue behind each other.
 */
export async function openEmbedded(dataDir: string | null): Promise<Database> {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const lite = dataDir ? await PGlite.create({ dataDir }) : await PGlite.create();
  const server = new PGLiteSocketServer({ db: lite, host: '127.0.0.1', port: 0 });
  await server.start();
  const url = `postgres://postgres@${server.getServerConn()}/postgres`;
  const database = fromPool(new pg.Pool({ connectionString: url, max: 1 }), 'embedded', url);
  return {
    ...database,
    async close() {
      await database.close();
      await server.stop();
      await lite.close();
    },
  };
}

function fromPool(pool: pg.Pool, kind: Database['kind'], url: string): Database {
  // A dropped idle connection must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  // Nor one in use (a query or transaction under way, a COPY) when the server goes away: the pool
  // listens only to idle clients, and an 'error' event nobody listens to ends the process. The
  // queries on it fail (answered 503, see unavailable.ts) and the pool discards it on release.
  pool.on('connect', (client) => {
    client.on('error', () => {});
  });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    kind,
    url,
    pool,
    async close() {
      await db.destroy();
    },
  };
}

/** Runs `fn` in the given transaction when there is one, else in a new one. */
export async function inTransaction<T>(db: Db, tx: Tx | undefined, fn: (tx: Tx) => Promise<T>): Promise<T> {
  if (tx) return fn(tx);
  return db.transaction().execute(fn);
}
