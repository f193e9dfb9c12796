import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './processes.ts';

/**
 * A redis-server of the test's own on a spare loopback port, for tests that flush, stop or restart
 * Redis: the shared Redis other test runs use is never flushed. No persistence, like a Redis that
 * comes back empty (unless asked for an append-only file). Stopped by its PID.
 */
export interface OwnRedis {
  url: string;
  port: number;
  /** Stops the server (SIGKILL: nothing is saved) and waits for it to exit. */
  stop(): Promise<void>;
  /** Stops the server (SIGKILL) and keeps its directory, for a `restart()` after a while down. */
  down(): Promise<void>;
  /**
   * Stops it (if running) and starts it again on the same port: a fresh, empty one (a restart
   * without persistence), or with `appendonly` the same data read back from its append-only file
   * (unless `empty`: its files are deleted first, as if its disk were lost).
   */
  restart(options?: { empty?: boolean }): Promise<void>;
}

export interface OwnRedisOptions {
  /**
   * Keep an append-only file, fsynced before every reply (`appendfsync always`): a SIGKILL loses
   * nothing Redis answered, and a restart comes back with it.
   */
  appendonly?: boolean;
}

export async function startOwnRedis(options: OwnRedisOptions = {}): Promise<OwnRedis> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(tmpdir(), 'tessera-redis-'));
  let child: ChildProcess | null = null;

  const launch = async () => {
    // `stop()` removed it: a restart after a stop (Redis down for a while, then back) needs it again.
    mkdirSync(dir, { recursive: true });
    const persistence = options.appendonly
      ? ['--appendonly', 'yes', '--appendfsync', 'always']
      : ['--appendonly', 'no'];
    const proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', dir],
      { stdio: 'ignore' },
    );
    child = proc;
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
    probe.on('error', () => {});
    try {
      const started = Date.now();
      for (;;) {
        try {
          if (probe.status !== 'ready') await probe.connect();
          await probe.ping();
          return;
        } catch (err) {
          if (proc.exitCode !== null || Date.now() - started > 5_000) throw err;
          probe.disconnect();
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    } finally {
      probe.disconnect();
    }
  };

  const kill = async () => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));
    process.kill(proc.pid!, 'SIGKILL');
    await exited;
  };

  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
    async down() {
      await kill();
    },
    async restart(restartOptions = {}) {
      await kill();
      if (restartOptions.empty) rmSync(dir, { recursive: true, force: true });
      await launch();
    },
  };
}
