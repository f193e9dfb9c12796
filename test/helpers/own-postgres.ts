import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './processes.ts';

const run = promisify(execFile);

/**
 * A PostgreSQL server of the test's own on a spare loopback port (initdb + pg_ctl), for tests that
 * stop, restart or replicate PostgreSQL: the machine's shared server is never touched. PostgreSQL
 * refuses to run as root, so when the tests run as root the cluster belongs to the `postgres` user and
 * its commands run through `runuser`. Trust authentication on loopback, user `postgres`.
 */
export interface OwnPostgres {
  /** `postgres://postgres@127.0.0.1:PORT/postgres` */
  url: string;
  port: number;
  dataDir: string;
  /** A URL for another database on this server (create it with `createDatabase`). */
  urlFor(database: string): string;
  createDatabase(name: string): Promise<void>;
  /** Runs SQL with psql (ON_ERROR_STOP) and returns its unaligned, tuples-only output. */
  psql(sql: string, database?: string): Promise<string>;
  /** `pg_ctl stop -m fast` (or `immediate`: a crash, recovery on the next start). */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  /** Starts it again on the same port and data directory (after `stop`). */
  start(): Promise<void>;
  /** Stops it and removes its data directory. */
  destroy(): Promise<void>;
}

const binDir = async (): Promise<string> => {
  const { stdout } = await run('pg_config', ['--bindir']);
  return stdout.trim();
};

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Runs a PostgreSQL program as the cluster's owner. */
async function pgRun(bin: string, program: string, args: string[]): Promise<string> {
  const file = path.join(bin, program);
  const { stdout } = asRoot
    ? await run('runuser', ['-u', 'postgres', '--', file, ...args], { cwd: '/tmp' })
    : await run(file, args, { cwd: '/tmp' });
  return stdout;
}

function ownedDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  if (asRoot) {
    const { uid, gid } = postgresUser();
    chownSync(dir, uid, gid);
  }
  chmodSync(dir, 0o700);
  return dir;
}

let pgUser: { uid: number; gid: number } | null = null;
function postgresUser(): { uid: number; gid: number } {
  if (pgUser) return pgUser;
  // `id -u postgres` without a child process: /etc/passwd is readable.
  const passwd = readFileSync('/etc/passwd', 'utf8');
  const line = passwd.split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('no postgres user on this machine');
  const [, , uid, gid] = line.split(':');
  pgUser = { uid: Number(uid), gid: Number(gid) };
  return pgUser;
}

interface ServerOptions {
  /** Extra `-c name=value` settings. */
  settings?: Record<string, string>;
}

function serverHandle(bin: string, dataDir: string, port: number, options: ServerOptions): OwnPostgres {
  const settings = {
    listen_addresses: '127.0.0.1',
    port: String(port),
    unix_socket_directories: dataDir,
    fsync: 'off',
    synchronous_commit: 'off',
    full_page_writes: 'off',
    max_connections: '200',
    ...options.settings,
  };
  const serverArgs = Object.entries(settings)
    .map(([k, v]) => `-c ${k}=${v}`)
    .join(' ');
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const handle: OwnPostgres = {
    url,
    port,
    dataDir,
    urlFor: (database) => `postgres://postgres@127.0.0.1:${port}/${database}`,
    async createDatabase(name) {
      await handle.psql(`CREATE DATABASE "${name}"`);
    },
    async psql(sql, database = 'postgres') {
      return pgRun(bin, 'psql', [
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        '-U',
        'postgres',
        '-d',
        database,
        '-v',
        'ON_ERROR_STOP=1',
        '-qAtc',
        sql,
      ]);
    },
    async stop(mode = 'fast') {
      await pgRun(bin, 'pg_ctl', ['-D', dataDir, '-m', mode, '-w', 'stop']);
    },
    async start() {
      await pgRun(bin, 'pg_ctl', [
        '-D',
        dataDir,
        '-w',
        '-t',
        '60',
        '-l',
        path.join(dataDir, 'server.log'),
        '-o',
        serverArgs,
        'start',
      ]);
    },
    async destroy() {
      try {
        await handle.stop('immediate');
      } catch {
        // already stopped
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return handle;
}

/** initdb a new cluster in a temporary directory and start it on a spare port. */
export async function startOwnPostgres(options: ServerOptions = {}): Promise<OwnPostgres> {
  const bin = await binDir();
  const dataDir = ownedDir('tessera-pg-');
  await pgRun(bin, 'initdb', [
    '-D',
    dataDir,
    '-U',
    'postgres',
    '--auth=trust',
    '--no-sync',
    '-E',
    'UTF8',
    '--no-instructions',
  ]);
  const port = await freePort();
  const handle = serverHandle(bin, dataDir, port, {
    settings: { wal_level: 'replica', max_wal_senders: '4', ...options.settings },
  });
  await handle.start();
  return handle;
}

/**
 * A streaming replica of `primary`, made with `pg_basebackup -R` (standby.signal and
 * primary_conninfo written for it) and started on its own spare port. Read-only; it follows the
 * primary's writes with a short lag.
 */
export async function startReplica(primary: OwnPostgres): Promise<OwnPostgres> {
  const bin = await binDir();
  const dataDir = ownedDir('tessera-pg-replica-');
  await pgRun(bin, 'pg_basebackup', [
    '-h',
    '127.0.0.1',
    '-p',
    String(primary.port),
    '-U',
    'postgres',
    '-D',
    dataDir,
    '-R',
    '-X',
    'stream',
    // An immediate checkpoint: the default (spread) waits most of a checkpoint interval.
    '--checkpoint=fast',
    '--no-sync',
  ]);
  const port = await freePort();
  const handle = serverHandle(bin, dataDir, port, { settings: { hot_standby: 'on' } });
  await handle.start();
  return handle;
}
