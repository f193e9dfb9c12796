/**
 * CPU time of the processes a benchmark involves, in µs: local processes from /proc, Redis from its
 * INFO (so it works wherever Redis runs), the whole machine from /proc/stat.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';

/** /proc reports clock ticks; Linux uses 100 a second. */
const TICK_MICROS = 10_000;

function statFields(pid: number): string[] {
  // The command name (field 2) may hold spaces: the fields after it start past its ')'.
  return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
}

/** User + system CPU of a process (0 when it is gone). */
export function cpuOfPid(pid: number): number {
  try {
    const fields = statFields(pid);
    return (Number(fields[11]) + Number(fields[12])) * TICK_MICROS;
  } catch {
    return 0;
  }
}

/**
 * CPU of a process and of everything it has forked, in µs: its own, that of its children now, and
 * that of its children that have exited (which it collected), so a child that comes and goes
 * during a measurement (a PostgreSQL backend) is counted too. Throws when the process is gone.
 */
export function cpuOfTree(pid: number): number {
  const fields = statFields(pid);
  const own =
    (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) * TICK_MICROS;
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean);
  return own + children.reduce((sum, child) => sum + cpuOfPid(Number(child)), 0);
}

/** User + system CPU of this process. */
export function ownCpu(): number {
  const { user, system } = process.cpuUsage();
  return user + system;
}

export async function redisCpu(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const read = (name: string) => Number(new RegExp(`${name}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return (read('used_cpu_sys') + read('used_cpu_user')) * 1e6;
}

/** Busy CPU of the whole machine (every core: user, nice, system, irq, softirq). */
export function machineCpu(): number {
  const [, user, nice, system, , , irq, softirq] = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]!
    .split(/\s+/)
    .map(Number);
  return (user! + nice! + system! + irq! + softirq!) * TICK_MICROS;
}
