/**
 * Where a benchmark's processes run. On a machine where the load generator (this process: autocannon
 * runs in it) shares the cores with what it measures, the two fight for CPU and every response wakes
 * a client sleeping on the other core, so the figure says as much about the client as about the
 * server. Pinned, the client has a core of its own and the system under test (Tessera or the bare
 * server, with Redis and PostgreSQL) has the rest, the same for every server measured.
 *
 * BENCH_PIN: `auto` (default) pins when there are at least two cores and `taskset` (util-linux) is
 * there; `off` leaves placement to the kernel. Redis and PostgreSQL are pinned only when they run
 * on this machine (found through Redis's INFO and PostgreSQL's postmaster.pid), and get every core
 * back when the run ends.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Redis } from 'ioredis';
import pg from 'pg';

export interface Placement {
  /** CPU list (taskset syntax) of the load generator. */
  client: string;
  /** CPU list of the servers under test. */
  server: string;
  /** CPU list of Redis and PostgreSQL: the servers' (default) or the client's (BENCH_PIN_SERVICES=client). */
  services: string;
  /** Every CPU, to give processes back when the run ends. */
  all: string;
}

export function placement(): Placement | null {
  const mode = process.env.BENCH_PIN ?? 'auto';
  if (mode === 'off') return null;
  const cores = os.cpus().length;
  if (cores < 2 || spawnSync('taskset', ['-V']).status !== 0) return null;
  const last = cores - 1;
  const client = String(last);
  const server = last === 1 ? '0' : `0-${last - 1}`;
  const services = process.env.BENCH_PIN_SERVICES === 'client' ? client : server;
  return { client, server, services, all: `0-${last}` };
}

export function describePlacement(p: Placement | null): string {
  return p
    ? `load generator pinned to CPU ${p.client}, the servers to CPU ${p.server}, Redis and PostgreSQL to CPU ${p.services}, the worker to CPU ${p.client} (BENCH_PIN=off to let the kernel place them)`
    : 'no CPU pinning (BENCH_PIN=off, or one core, or no taskset)';
}

/**
 * Where `tessera worker` runs: off the servers' CPUs, on the load generator's. In the scale-out
 * topology the benchmark stands for, the worker is another node; on the servers' core its jobs
 * (the outbox poll, the usage flush, the scheduler, each a few milliseconds now and then) held up
 * the API node's requests.
 */
export function workerPlacement(p: Placement | null): Placement | null {
  return p && { ...p, server: p.client };
}

/** Sets the CPUs of a process and all its threads; false when the process cannot be pinned. */
export function pinProcess(pid: number, cpus: string): boolean {
  return spawnSync('taskset', ['-acp', cpus, String(pid)], { stdio: 'ignore' }).status === 0;
}

/** The command that runs `args` (node arguments) on the server CPUs. */
export function serverCommand(p: Placement | null, args: string[]): [string, string[]] {
  return p ? ['taskset', ['-c', p.server, process.execPath, ...args]] : [process.execPath, args];
}

/**
 * The services of the system under test: the local Redis and PostgreSQL (postmaster and every
 * backend; backends forked later inherit the postmaster's CPUs); the servers the benchmark starts
 * are pinned as they start (`serverCommand`). `pin` puts the services on the server CPUs and this
 * process on the client CPU; `unpin` gives them, and this process, every CPU back.
 */
export class ServerSide {
  private redis = 0;
  private postmaster = 0;

  private constructor(private readonly placement: Placement | null) {}

  static async find(p: Placement | null, redis: Redis, pgAdminUrl: string): Promise<ServerSide> {
    const side = new ServerSide(p);
    if (!p) return side;
    side.redis = Number(/process_id:(\d+)/.exec(await redis.info('server'))?.[1]) || 0;
    const client = new pg.Client({ connectionString: pgAdminUrl });
    await client.connect();
    try {
      const dir = (await client.query<{ data_directory: string }>('SHOW data_directory')).rows[0]
        ?.data_directory;
      if (dir) side.postmaster = Number(readFileSync(`${dir}/postmaster.pid`, 'utf8').split('\n')[0]) || 0;
    } catch {
      // Not a local PostgreSQL (or not readable): it stays where the kernel puts it.
    } finally {
      await client.end();
    }
    return side;
  }

  pin(): void {
    if (!this.placement) return;
    this.place(this.placement.services);
    pinProcess(process.pid, this.placement.client);
  }

  unpin(): void {
    if (!this.placement) return;
    this.place(this.placement.all);
    pinProcess(process.pid, this.placement.all);
  }

  private place(cpus: string): void {
    if (this.redis > 0) pinProcess(this.redis, cpus);
    if (this.postmaster > 0)
      for (const pid of [this.postmaster, ...childrenOf(this.postmaster)]) pinProcess(pid, cpus);
  }
}

function childrenOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  } catch {
    return [];
  }
}
