/**
 * The load report: what a run measured, as `report.json` (every figure and series) and
 * `index.html` (tables and inline SVG charts). Pure functions of the measurements.
 */
import type { Sample } from './processes.ts';
import { htmlTable, lineChart, page, type Series } from './render.ts';
import {
  type LatencySummary,
  memoryTrend,
  perSecond,
  type SecondPoint,
  summarize,
  type Trend,
} from './stats.ts';
import { isCheck, OPS, type Op, type Recorder } from './workload.ts';

export interface OpFigures extends LatencySummary {
  op: string;
  requests: number;
  perSecond: number;
  /** Answers by status code (non-2xx are errors). */
  statuses: Record<string, number>;
}

export interface PhaseFigures {
  name: string;
  seconds: number;
  requestsPerSecond: number;
  ops: OpFigures[];
  /** Every check (boolean and metered) together. */
  checks: OpFigures;
  non2xx: number;
  /** Connection errors and timeouts. */
  errors: number;
  series: Record<string, SecondPoint[]>;
}

export function phaseFigures(
  name: string,
  recorder: Recorder,
  seconds: number,
  errors: number,
): PhaseFigures {
  const figures = (label: string, ops: readonly Op[]): OpFigures => {
    const latencies = ops.flatMap((op) => recorder.latenciesOf(op));
    const statuses: Record<string, number> = {};
    let requests = 0;
    for (const op of ops)
      for (const [status, n] of recorder.statuses.get(op) ?? []) {
        statuses[String(status)] = (statuses[String(status)] ?? 0) + n;
        requests += n;
      }
    return {
      op: label,
      requests,
      perSecond: Math.round((requests / seconds) * 10) / 10,
      statuses,
      ...summarize(latencies),
    };
  };
  const ops = OPS.map((op) => figures(op, [op]));
  const non2xx = ops.reduce(
    (n, o) => n + Object.entries(o.statuses).reduce((m, [s, c]) => m + (s.startsWith('2') ? 0 : c), 0),
    0,
  );
  const series: Record<string, SecondPoint[]> = {};
  for (const op of OPS) series[op] = perSecond(recorder.bySecond.get(op) ?? new Map());
  return {
    name,
    seconds: Math.round(seconds * 10) / 10,
    requestsPerSecond: Math.round(ops.reduce((n, o) => n + o.requests, 0) / seconds),
    ops,
    checks: figures('checks (all)', OPS.filter(isCheck)),
    non2xx,
    errors,
    series,
  };
}

export interface ProcessFigures {
  name: string;
  cpuMean: number;
  cpuMax: number;
  rssStartMb: number;
  rssEndMb: number;
  rssMaxMb: number;
  heapStartMb: number | null;
  heapEndMb: number | null;
  heapMaxMb: number | null;
  rssTrend?: Trend;
  heapTrend?: Trend;
  /** The trend of the heap left by each major collection (the live set). */
  liveHeapTrend?: Trend;
}

const mb = (bytes: number) => Math.round((bytes / 1_048_576) * 10) / 10;

/** CPU and memory of one process over the samples of the given phases. */
export function processFigures(
  name: string,
  all: readonly Sample[],
  phases: readonly string[],
): ProcessFigures {
  const samples = all.filter((s) => phases.includes(s.phase));
  const cpu = samples.map((s) => s.cpu);
  const rss = samples.map((s) => s.rss).filter((v) => v > 0);
  const heap = samples.map((s) => s.heapUsed).filter((v): v is number => v !== null);
  const first = <T>(xs: T[]) => xs[0];
  const last = <T>(xs: T[]) => xs[xs.length - 1];
  return {
    name,
    cpuMean: cpu.length ? Math.round((cpu.reduce((a, b) => a + b, 0) / cpu.length) * 10) / 10 : 0,
    cpuMax: cpu.length ? Math.max(...cpu) : 0,
    rssStartMb: mb(first(rss) ?? 0),
    rssEndMb: mb(last(rss) ?? 0),
    rssMaxMb: mb(rss.length ? Math.max(...rss) : 0),
    heapStartMb: heap.length ? mb(first(heap)!) : null,
    heapEndMb: heap.length ? mb(last(heap)!) : null,
    heapMaxMb: heap.length ? mb(Math.max(...heap)) : null,
  };
}

/**
 * Soak trends (least squares after the first 20% of the phase's samples) of RSS and heap, and of
 * the heap each major collection left (the live set: a leak raises it; garbage that piles up
 * between collections gives the heap itself a slope, but not this).
 */
export function withTrends(f: ProcessFigures, all: readonly Sample[], phase: string): ProcessFigures {
  const samples = all.filter((s) => s.phase === phase);
  const t0 = samples[0]?.t ?? 0;
  const rss = samples.filter((s) => s.rss > 0).map((s) => ({ t: s.t - t0, bytes: s.rss }));
  const heap = samples
    .filter((s) => s.heapUsed !== null)
    .map((s) => ({ t: s.t - t0, bytes: s.heapUsed as number }));
  const live = samples
    .filter((s) => typeof s.heapAfterMajorGc === 'number')
    .map((s) => ({ t: s.t - t0, bytes: s.heapAfterMajorGc as number }));
  return {
    ...f,
    rssTrend: rss.length ? memoryTrend(rss) : undefined,
    heapTrend: heap.length ? memoryTrend(heap) : undefined,
    liveHeapTrend: live.length ? memoryTrend(live) : undefined,
  };
}

export interface Targets {
  checkP99AtRate: { rate: number; p99: number; target: number; met: boolean } | null;
  mixedOverFloor: { ratio: number; target: number; met: boolean } | null;
  errors: { count: number; met: boolean };
}

export interface LoadReport {
  title: string;
  startedAt: string;
  command: string;
  setup: Record<string, string | number>;
  floor: { before: number; after: number; mean: number } | null;
  phases: PhaseFigures[];
  targets: Targets;
  processes: ProcessFigures[];
  samples: Record<string, Sample[]>;
  notes: string[];
}

const COLORS: Record<string, string> = {
  check_boolean: '#1f77b4',
  check_metered: '#2ca02c',
  usage: '#ff7f0e',
  admin_override: '#9467bd',
  admin_plan_change: '#d62728',
  api: '#1f77b4',
  worker: '#ff7f0e',
  'load generator': '#7f7f7f',
  redis: '#d62728',
  postgres: '#2ca02c',
};
const color = (name: string) => COLORS[name] ?? '#000';

/** The per-second latency charts of a phase: p99 solid, p50 dashed, one colour per operation. */
export function latencyChart(phase: PhaseFigures): string {
  const series: Series[] = [];
  for (const op of OPS) {
    const points = phase.series[op] ?? [];
    if (points.length === 0) continue;
    series.push({
      name: `${op} p99`,
      color: color(op),
      points: points.map((p) => ({ x: p.second, y: p.p99 })),
    });
    series.push({
      name: `${op} p50`,
      color: color(op),
      dashed: true,
      points: points.map((p) => ({ x: p.second, y: p.p50 })),
    });
  }
  return lineChart(series, {
    title: `${phase.name}: latency per second (p99 solid, p50 dashed)`,
    xLabel: 'seconds into the phase',
    yLabel: 'ms',
    height: 360,
  });
}

/** RSS (solid) and heap used (dashed) of each Tessera process over the whole run. */
/** Where each phase began, in seconds of the run (from the samples' phase labels). */
export function phaseMarkers(samples: Record<string, Sample[]>): Array<{ x: number; label: string }> {
  const list = Object.values(samples)[0] ?? [];
  const markers: Array<{ x: number; label: string }> = [];
  for (let i = 0; i < list.length; i++)
    if (i === 0 || list[i]!.phase !== list[i - 1]!.phase)
      markers.push({ x: list[i]!.t / 1000, label: list[i]!.phase });
  return markers;
}

export function memoryChart(samples: Record<string, Sample[]>, names: readonly string[]): string {
  const series: Series[] = [];
  for (const name of names) {
    const list = samples[name] ?? [];
    if (list.length === 0) continue;
    series.push({
      name: `${name} RSS`,
      color: color(name),
      points: list.map((s) => ({ x: s.t / 1000, y: mb(s.rss) })),
    });
    const heap = list.filter((s) => s.heapUsed !== null);
    if (heap.length)
      series.push({
        name: `${name} heap used`,
        color: color(name),
        dashed: true,
        points: heap.map((s) => ({ x: s.t / 1000, y: mb(s.heapUsed as number) })),
      });
  }
  return lineChart(series, {
    title: 'Memory over the run',
    xLabel: 'seconds',
    yLabel: 'MB',
    markers: phaseMarkers(samples),
  });
}

export function cpuChart(samples: Record<string, Sample[]>): string {
  const series: Series[] = Object.entries(samples).map(([name, list]) => ({
    name,
    color: color(name),
    points: list.map((s) => ({ x: s.t / 1000, y: s.cpu })),
  }));
  return lineChart(series, {
    title: 'CPU over the run',
    xLabel: 'seconds',
    yLabel: '% of one core',
    markers: phaseMarkers(samples),
  });
}

const verdict = (met: boolean) => `<span class="${met ? 'pass' : 'fail'}">${met ? 'met' : 'not met'}</span>`;

function statusText(statuses: Record<string, number>): string {
  const bad = Object.entries(statuses).filter(([s]) => !s.startsWith('2'));
  return bad.length ? bad.map(([s, n]) => `${s === '0' ? 'no answer' : s}: ${n}`).join(', ') : '0';
}

function phaseTable(p: PhaseFigures): string {
  return htmlTable(
    ['operation', 'requests', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms', 'non-2xx by status'],
    [...p.ops, p.checks].map((o) => [
      o.op,
      o.requests,
      o.perSecond,
      o.p50,
      o.p95,
      o.p99,
      o.max,
      statusText(o.statuses),
    ]),
  );
}

function trendText(t: Trend | undefined): string {
  return t
    ? `${t.mbPerMinute} MB/min (R² ${t.r2}, ${t.samples} samples)${t.growing ? ': growing' : ''}`
    : '–';
}

export function renderHtml(r: LoadReport): string {
  const sections: Array<{ heading: string; html: string }> = [];
  const t = r.targets;
  const targetRows: Array<Array<string | number>> = [];
  if (t.checkP99AtRate)
    targetRows.push([
      `check p99 at ${t.checkP99AtRate.rate} req/s (mixed, open loop)`,
      `< ${t.checkP99AtRate.target} ms`,
      `${t.checkP99AtRate.p99} ms`,
      t.checkP99AtRate.met ? 'met' : 'not met',
    ]);
  if (t.mixedOverFloor)
    targetRows.push([
      'mixed throughput / bare node:http route',
      `≥ ${t.mixedOverFloor.target * 100}%`,
      `${(t.mixedOverFloor.ratio * 100).toFixed(1)}%`,
      t.mixedOverFloor.met ? 'met' : 'not met',
    ]);
  targetRows.push([
    'errors (non-2xx, connection errors, timeouts)',
    '0',
    String(t.errors.count),
    t.errors.met ? 'met' : 'not met',
  ]);
  sections.push({
    heading: 'Targets',
    html: htmlTable(['target', 'wanted', 'measured', 'verdict'], targetRows).replace(
      /<td>(met|not met)<\/td>/g,
      (_, v: string) => `<td>${verdict(v === 'met')}</td>`,
    ),
  });
  sections.push({
    heading: 'Setup',
    html: `${htmlTable(
      ['setting', 'value'],
      Object.entries(r.setup).map(([k, v]) => [k, v]),
    )}<p>Command: <code>${r.command.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</code></p>${r.notes.map((n) => `<p>${n.replace(/&/g, '&amp;').replace(/</g, '&lt;')}</p>`).join('')}`,
  });
  if (r.floor)
    sections.push({
      heading: 'Bare node:http route (the floor), same requests and settings',
      html: htmlTable(
        ['run', 'req/s'],
        [
          ['before', Math.round(r.floor.before)],
          ['after', Math.round(r.floor.after)],
          ['mean', Math.round(r.floor.mean)],
        ],
      ),
    });
  for (const p of r.phases)
    sections.push({
      heading: `${p.name} (${p.seconds} s, ${p.requestsPerSecond.toLocaleString('en-US')} req/s, non-2xx ${p.non2xx}, connection errors and timeouts ${p.errors})`,
      html: `${phaseTable(p)}\n${latencyChart(p)}`,
    });
  const hasTrends = r.processes.some((p) => p.heapTrend || p.rssTrend);
  const hasLive = r.processes.some((p) => p.liveHeapTrend);
  sections.push({
    heading: 'Processes (over the measured phases)',
    html: [
      htmlTable(
        [
          'process',
          'CPU mean %',
          'CPU max %',
          'RSS start / end / max MB',
          'heap used start / end / max MB',
          ...(hasTrends ? ['RSS slope', 'heap slope'] : []),
          ...(hasLive ? ['live heap slope (after major GCs)'] : []),
        ],
        r.processes.map((p) => [
          p.name,
          p.cpuMean,
          p.cpuMax,
          p.rssMaxMb ? `${p.rssStartMb} / ${p.rssEndMb} / ${p.rssMaxMb}` : '–',
          p.heapMaxMb !== null ? `${p.heapStartMb} / ${p.heapEndMb} / ${p.heapMaxMb}` : '–',
          ...(hasTrends ? [trendText(p.rssTrend), trendText(p.heapTrend)] : []),
          ...(hasLive ? [trendText(p.liveHeapTrend)] : []),
        ]),
      ),
      memoryChart(r.samples, ['api', 'worker']),
      cpuChart(r.samples),
    ].join('\n'),
  });
  return page(`${r.title} (${r.startedAt})`, sections);
}
