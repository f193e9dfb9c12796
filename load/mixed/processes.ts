/**
 * The processes of a load run: Tessera as shipped (compiled `dist/`, built first when missing or
 * older than the sources), API and worker as separate processes, each with the memory probe; and a
 * sampler reading each one's CPU and RSS from /proc and its heap from the probe.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const PROBE = path.resolve('load/mixed/heap-probe.mjs');
const DIST_MAIN = path.resolve('dist/src/main.js');

/** The Node flags of `npm start` (package.json). */
export const SERVER_NODE_FLAGS = [
  '--max-semi-space-size=32',
  '--no-allocation-site-pretenuring',
  '--no-memory-reducer',
];

function newestIn(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    const st = statSync(full);
    newest = Math.max(newest, st.isDirectory() ? newestIn(full) : st.mtimeMs);
  }
  return newest;
}

/** Builds `dist/` (`npm run build`) unless it is there and newer than src/ and migrations/. Says which. */
export function ensureBuilt(): string {
  const sources = Math.max(newestIn('src'), newestIn('migrations'));
  if (existsSync(DIST_MAIN) && statSync(DIST_MAIN).mtimeMs >= sources)
    return 'compiled JS from dist/ (up to date with src/)';
  process.stdout.write('building dist/ (npm run build)...\n');
  execFileSync('npm', ['run', 'build'], { stdio: 'inherit' });
  return 'compiled JS from dist/ (built by this run)';
}

export interface Memory {
  at: number;
  rss: number;
  heapUsed: number;
  heapTotal: number;
  /** The heap left by the latest major collection, and its number (the probe counts them). */
  lastMajorGc: { seq: number; heapUsed: number } | null;
}

export interface Tessera {
  role: 'api' | 'worker';
  child: ChildProcess;
  /** The latest memory the probe reported. */
  memory: Memory | null;
}

/** Every process this run started, so a failed run can stop them (by PID) before it exits. */
export const started = new Set<ChildProcess>();

/**
 * `LOAD_PROFILE_DIR`: the API and worker write V8 CPU profiles in its api/ and worker/ (`--cpu-prof`,
 * written when they stop; open them in Chrome DevTools). Node refuses the flag in NODE_OPTIONS, hence this.
 */
function profileFlags(role: 'api' | 'worker'): string[] {
  const dir = process.env.LOAD_PROFILE_DIR;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${path.join(dir, role)}`] : [];
}

function spawnTessera(role: 'api' | 'worker', env: Record<string, string>): Tessera {
  const child = spawn(
    process.execPath,
    [
      ...SERVER_NODE_FLAGS,
      ...profileFlags(role),
      '--import',
      PROBE,
      DIST_MAIN,
      role === 'api' ? 'serve' : 'worker',
    ],
    { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit', 'ipc'] },
  );
  started.add(child);
  const t: Tessera = { role, child, memory: null };
  let lastMajorGc: Memory['lastMajorGc'] = null;
  child.on('message', (m: { probe?: string; seq?: number } & Omit<Memory, 'lastMajorGc'>) => {
    if (m?.probe === 'gc' && typeof m.seq === 'number') {
      lastMajorGc = { seq: m.seq, heapUsed: m.heapUsed };
      if (t.memory) t.memory.lastMajorGc = lastMajorGc;
    }
    if (m?.probe === 'memory')
      t.memory = { at: m.at, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, lastMajorGc };
  });
  return t;
}

/**
 * Refuses a port something else listens on: other benchmarks run on this machine too, and a
 * health check answered by another server would send this run's seeding to it.
 */
export async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', () =>
      reject(new Error(`port ${port} is in use (set LOAD_PORT to another base port)`)),
    );
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
  });
}

/** `tessera serve`, resolved once it answers /healthz. */
export async function startApi(env: Record<string, string>, port: number): Promise<Tessera> {
  await assertPortFree(port);
  const t = spawnTessera('api', { ...env, PORT: String(port), RUN_WORKERS: 'false' });
  t.child.stdout?.on('data', () => {});
  const began = Date.now();
  for (;;) {
    if (t.child.exitCode !== null) throw new Error(`tessera serve exited with ${t.child.exitCode}`);
    try {
      if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok && t.child.exitCode === null) return t;
    } catch {
      // not up yet
    }
    if (Date.now() - began > 120_000) throw new Error('tessera serve did not start');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** `tessera worker`, resolved at its start-up line. */
export async function startWorker(env: Record<string, string>): Promise<Tessera> {
  const t = spawnTessera('worker', { ...env, LOG_LEVEL: 'info' });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('tessera worker did not start')), 120_000);
    t.child.stdout?.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('worker started')) {
        clearTimeout(timer);
        resolve();
      }
    });
    t.child.once('exit', (code) => reject(new Error(`tessera worker exited with ${code}`)));
  });
  return t;
}

/** The bare node:http route (load/floor-server.ts) on `port`. */
export async function startFloor(port: number): Promise<ChildProcess> {
  await assertPortFree(port);
  const child = spawn(process.execPath, [...SERVER_NODE_FLAGS, '--import', 'tsx', 'load/floor-server.ts'], {
    env: { ...process.env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  started.add(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the floor server exited with ${code}`)));
  });
  return child;
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** /proc reports clock ticks; Linux uses 100 a second. */
const TICK_MS = 10;

/** User + system CPU of a process in ms, and its RSS in bytes; null when it is gone. */
export function procStats(pid: number): { cpuMs: number; rss: number } | null {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    const cpuMs = (Number(fields[11]) + Number(fields[12])) * TICK_MS;
    const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return { cpuMs, rss: Number(kb ?? 0) * 1024 };
  } catch {
    return null;
  }
}

export interface Sample {
  /** ms since the sampler started. */
  t: number;
  /** CPU over the interval since the previous sample, in % of one core. */
  cpu: number;
  rss: number;
  heapUsed: number | null;
  heapTotal: number | null;
  /** The heap a major collection left, on the first sample after it (null on the others). */
  heapAfterMajorGc?: number | null;
  phase: string;
}

/**
 * Samples each process every `everyMs`: CPU and RSS (`read`: /proc/PID/stat and status) and heap
 * (the probe, for Tessera's processes). `phase` labels the samples.
 */
export class Sampler {
  readonly samples = new Map<string, Sample[]>();
  phase = 'start';
  private readonly began = Date.now();
  private readonly last = new Map<string, { at: number; cpuMs: number }>();
  private readonly gcSeen = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly processes: ReadonlyArray<{
      name: string;
      /** CPU in ms and RSS in bytes (0 when not known); null when the process is gone. */
      read: () => { cpuMs: number; rss: number } | null;
      memory?: () => Pick<Memory, 'heapUsed' | 'heapTotal' | 'lastMajorGc'> | null;
    }>,
    private readonly everyMs = 1000,
  ) {}

  start(): void {
    this.take();
    this.timer = setInterval(() => this.take(), this.everyMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private take(): void {
    const now = Date.now();
    for (const p of this.processes) {
      const s = p.read();
      if (!s) continue;
      const { cpuMs, rss } = s;
      const heap = p.memory?.() ?? null;
      const prev = this.last.get(p.name);
      this.last.set(p.name, { at: now, cpuMs });
      if (!prev) continue;
      const gc = heap?.lastMajorGc ?? null;
      const freshGc = gc !== null && gc.seq !== this.gcSeen.get(p.name);
      if (gc) this.gcSeen.set(p.name, gc.seq);
      const list = this.samples.get(p.name) ?? [];
      list.push({
        t: now - this.began,
        cpu: Math.round(((cpuMs - prev.cpuMs) / Math.max(1, now - prev.at)) * 1000) / 10,
        rss,
        heapUsed: heap?.heapUsed ?? null,
        heapTotal: heap?.heapTotal ?? null,
        heapAfterMajorGc: freshGc ? gc.heapUsed : null,
        phase: this.phase,
      });
      this.samples.set(p.name, list);
    }
  }
}

/** This process (the load generator): CPU and memory from Node itself. */
export const ownStats = () => {
  const { user, system } = process.cpuUsage();
  return { cpuMs: (user + system) / 1000, rss: process.memoryUsage.rss() };
};

/** PostgreSQL's postmaster PID when it runs on this machine (its CPU is then sampled too). */
export function postmasterPid(dataDirectory: string | undefined): number | null {
  try {
    return Number(readFileSync(`${dataDirectory}/postmaster.pid`, 'utf8').split('\n')[0]) || null;
  } catch {
    return null;
  }
}
