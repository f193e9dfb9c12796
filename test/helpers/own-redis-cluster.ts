import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort } from './processes.ts';

const run = promisify(execFile);

/**
 * A Redis Cluster of the test's own: three `redis-server --cluster-enabled yes` masters (no
 * replicas) on spare loopback ports, each in a temporary directory with its cluster-config-file,
 * joined with `redis-cli --cluster create`. No persistence. Stopped by their PIDs.
 */
export interface OwnRedisCluster {
  /** `host:port` of every node (REDIS_CLUSTER_NODES). */
  nodes: string[];
  /** Stops every node (SIGKILL) and removes their directories. */
  stop(): Promise<void>;
}

async function clusterInfo(port: number): Promise<string> {
  const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
  probe.on('error', () => {});
  try {
    await probe.connect();
    return String(await probe.call('CLUSTER', 'INFO'));
  } catch {
    return '';
  } finally {
    probe.disconnect();
  }
}

async function until(ms: number, done: () => Promise<boolean>, what: string): Promise<void> {
  const started = Date.now();
  for (;;) {
    if (await done()) return;
    if (Date.now() - started > ms) throw new Error(`own Redis Cluster: ${what} not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startOwnRedisCluster(size = 3): Promise<OwnRedisCluster> {
  const ports: number[] = [];
  // Ports told apart: freePort may hand the same one twice before anything listens on it, and a
  // cluster node also listens on its port + 10000 (the cluster bus).
  while (ports.length < size) {
    const port = await freePort();
    if (port > 55_000 || ports.includes(port)) continue;
    if (!(await freePortIs(port + 10_000))) continue;
    ports.push(port);
  }
  const dirs = ports.map(() => mkdtempSync(path.join(tmpdir(), 'tessera-redis-cluster-')));
  const children: ChildProcess[] = ports.map((port, i) =>
    spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        path.join(dirs[i]!, 'nodes.conf'),
        '--cluster-node-timeout',
        '5000',
        '--save',
        '',
        '--appendonly',
        'no',
        '--dir',
        dirs[i]!,
      ],
      { stdio: 'ignore' },
    ),
  );
  const nodes = ports.map((port) => `127.0.0.1:${port}`);
  const stop = async () => {
    await Promise.all(
      children.map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        process.kill(child.pid!, 'SIGKILL');
        await exited;
      }),
    );
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  };
  try {
    await until(
      10_000,
      async () => (await Promise.all(ports.map(clusterInfo))).every((info) => info !== ''),
      'nodes answering',
    );
    await run('redis-cli', ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes']);
    await until(
      20_000,
      async () =>
        (await Promise.all(ports.map(clusterInfo))).every((info) => info.includes('cluster_state:ok')),
      'cluster_state:ok',
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { nodes, stop };
}

async function freePortIs(port: number): Promise<boolean> {
  const { createServer } = await import('node:net');
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}
