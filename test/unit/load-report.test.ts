import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { Sample } from '../../load/mixed/processes.ts';
import { escapeHtml, lineChart, niceStep } from '../../load/mixed/render.ts';
import { type ProcessFigures, phaseFigures, renderHtml, withTrends } from '../../load/mixed/report.ts';
import {
  GROWTH_MIN_R2,
  memoryTrend,
  percentile,
  perSecond,
  summarize,
  weightedPick,
} from '../../load/mixed/stats.ts';
import { type Call, driveMix, OPS, type Op, Recorder } from '../../load/mixed/workload.ts';

describe('load report: percentiles', () => {
  it('takes the nearest rank', () => {
    const sorted = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(sorted, 0.5)).toBe(50);
    expect(percentile(sorted, 0.99)).toBe(99);
    expect(percentile(sorted, 1)).toBe(100);
    expect(percentile([7], 0.99)).toBe(7);
    expect(percentile([], 0.5)).toBe(0);
  });

  it('summarises unsorted latencies, rounded to a hundredth of a millisecond', () => {
    const s = summarize([3.456, 1, 2, 10, 4]);
    expect(s).toEqual({ count: 5, p50: 3.46, p95: 10, p99: 10, max: 10 });
  });

  it('keeps p50 <= p95 <= p99 <= max, all among the values', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: 0, max: 1e4, noNaN: true }), { minLength: 1 }), (xs) => {
        const s = summarize(xs);
        expect(s.p50).toBeLessThanOrEqual(s.p95);
        expect(s.p95).toBeLessThanOrEqual(s.p99);
        expect(s.p99).toBeLessThanOrEqual(s.max);
        expect(s.count).toBe(xs.length);
      }),
    );
  });

  it('makes per-second points in time order', () => {
    const points = perSecond(
      new Map([
        [2, [5, 6]],
        [0, [1, 2, 3]],
      ]),
    );
    expect(points.map((p) => p.second)).toEqual([0, 2]);
    expect(points[0]).toEqual({ second: 0, count: 3, p50: 2, p99: 3 });
  });
});

describe('load report: memory slope', () => {
  const series = (mbPerMinute: number, noise: (i: number) => number = () => 0) =>
    Array.from({ length: 100 }, (_, i) => ({
      t: i * 6000,
      bytes: (200 + mbPerMinute * (i / 10) + noise(i)) * 1_048_576,
    }));

  it('finds a steady growth and calls it a trend', () => {
    const trend = memoryTrend(series(3));
    expect(trend.mbPerMinute).toBeCloseTo(3, 3);
    expect(trend.r2).toBeCloseTo(1, 3);
    expect(trend.samples).toBe(80);
    expect(trend.growing).toBe(true);
  });

  it('leaves out the warm-up: a jump in the first 20% is not growth', () => {
    const points = series(0).map((p, i) => (i < 20 ? { ...p, bytes: p.bytes - (20 - i) * 5_000_000 } : p));
    const trend = memoryTrend(points);
    expect(trend.mbPerMinute).toBe(0);
    expect(trend.growing).toBe(false);
  });

  it('does not call a garbage collector sawtooth a trend', () => {
    const trend = memoryTrend(series(0, (i) => (i % 10) * 8));
    // A sawtooth fitted from mid-tooth has a slope, but the line explains little of it.
    expect(trend.r2).toBeLessThan(GROWTH_MIN_R2);
    expect(trend.growing).toBe(false);
  });

  it('reads the live set from the heap each major collection left, not from the pile-up between', () => {
    // Garbage piles up for 4 minutes, then a major collection takes it back to the live set.
    const samples = (liveMbPerMinute: number): Sample[] =>
      Array.from({ length: 600 }, (_, i) => {
        const live = (1000 + liveMbPerMinute * (i / 60)) * 1_048_576;
        const collected = i % 240 === 0;
        return {
          t: i * 1000,
          cpu: 50,
          rss: live * 2,
          heapUsed: live + (i % 240) * 3 * 1_048_576,
          heapTotal: live * 2,
          heapAfterMajorGc: collected || i % 20 === 0 ? live : null,
          phase: 'soak',
        };
      });
    const steady = withTrends({ name: 'api' } as ProcessFigures, samples(0), 'soak');
    expect(steady.liveHeapTrend?.mbPerMinute).toBe(0);
    expect(steady.liveHeapTrend?.growing).toBe(false);
    const leaking = withTrends({ name: 'api' } as ProcessFigures, samples(5), 'soak');
    expect(leaking.liveHeapTrend?.mbPerMinute).toBeCloseTo(5, 1);
    expect(leaking.liveHeapTrend?.growing).toBe(true);
  });

  it('answers flat for too few samples', () => {
    expect(memoryTrend([{ t: 0, bytes: 1 }])).toMatchObject({ mbPerMinute: 0, growing: false });
  });
});

describe('load report: the mix', () => {
  it('picks in proportion to the weights', () => {
    const counts = [0, 0, 0];
    const n = 10_000;
    for (let i = 0; i < n; i++) counts[weightedPick([90, 8, 2], (i + 0.5) / n)]! += 1;
    expect(counts).toEqual([9000, 800, 200]);
  });
});

describe('load report: rendering', () => {
  it('draws an SVG with a polyline per series and escapes names', () => {
    const svg = lineChart(
      [
        {
          name: 'a <p99>',
          color: '#f00',
          points: [
            { x: 0, y: 1 },
            { x: 1, y: 4 },
          ],
        },
        { name: 'b', color: '#00f', dashed: true, points: [{ x: 0, y: 2 }] },
      ],
      { title: 'T & t', xLabel: 's', yLabel: 'ms' },
    );
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg.endsWith('</svg>')).toBe(true);
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(svg).toContain('a &lt;p99&gt;');
    expect(svg).toContain('T &amp; t');
    expect(svg).toContain('stroke-dasharray');
    expect(svg).not.toContain('NaN');
  });

  it('marks where phases began', () => {
    const svg = lineChart(
      [
        {
          name: 'a',
          color: '#f00',
          points: [
            { x: 0, y: 1 },
            { x: 10, y: 2 },
          ],
        },
      ],
      {
        title: 't',
        xLabel: 'x',
        yLabel: 'y',
        markers: [
          { x: 5, label: 'mixed' },
          { x: 50, label: 'outside' },
        ],
      },
    );
    expect(svg).toContain('>mixed</text>');
    expect(svg).not.toContain('outside');
  });

  it('draws an empty chart without NaN', () => {
    expect(lineChart([], { title: 't', xLabel: 'x', yLabel: 'y' })).not.toContain('NaN');
  });

  it('chooses round tick steps', () => {
    expect(niceStep(10)).toBe(2);
    expect(niceStep(37)).toBe(10);
    expect(niceStep(0.3)).toBeCloseTo(0.1);
    expect(niceStep(0)).toBe(1);
    expect(escapeHtml('<a href="x">&</a>')).toBe('&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;');
  });

  it('renders a whole report with targets, tables and charts', () => {
    const recorder = new Recorder();
    recorder.record('check_boolean', 200, 1.5);
    recorder.record('check_metered', 200, 2.5);
    recorder.record('usage', 503, 9);
    const phase = phaseFigures('Mixed', recorder, 1, 0);
    expect(phase.non2xx).toBe(1);
    expect(phase.checks.requests).toBe(2);
    const html = renderHtml({
      title: 'Tessera mixed load',
      startedAt: '2026-12-07T00:00:00.000Z',
      command: 'npm run load',
      setup: { customers: 100_000 },
      floor: { before: 1000, after: 1200, mean: 1100 },
      phases: [phase],
      targets: {
        checkP99AtRate: { rate: 1000, p99: 4, target: 10, met: true },
        mixedOverFloor: { ratio: 0.3, target: 0.4, met: false },
        errors: { count: 1, met: false },
      },
      processes: [],
      samples: {},
      notes: [],
    });
    expect(html).toContain('<span class="pass">met</span>');
    expect(html).toContain('<span class="fail">not met</span>');
    expect(html).toContain('503: 1');
    expect(html).toContain('100,000');
    expect(html.match(/<svg/g)!.length).toBeGreaterThanOrEqual(2);
  });
});

/**
 * The harness reads which operation an answer belongs to from the autocannon connection's context
 * (one request in flight per connection). This fails if autocannon stops working that way: each
 * path answers its own status, and every answer must be recorded under the operation sent.
 */
describe('load harness: answers attributed to their operation', () => {
  let server: Server | undefined;
  afterEach(async () => {
    await new Promise((r) => server?.close(r) ?? r(undefined));
  });

  it('records every answer under the operation that was sent', async () => {
    const statusOf: Record<Op, number> = {
      check_boolean: 200,
      check_metered: 201,
      usage: 202,
      admin_override: 203,
      admin_plan_change: 206,
    };
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        const op = req.url!.slice(1) as Op;
        // Varying delays so answers come back out of the order they were sent in.
        setTimeout(() => res.writeHead(statusOf[op], { 'content-length': 2 }).end('{}'), Math.random() * 3);
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    let n = 0;
    const next = (): Call => {
      const op = OPS[n++ % OPS.length]!;
      return { op, method: 'POST', path: `/${op}`, body: '{}', key: 'k' };
    };
    const run = await driveMix({ baseUrl: `http://127.0.0.1:${port}`, connections: 8, duration: 1, next });
    expect(run.total).toBeGreaterThan(50);
    for (const op of OPS) {
      const statuses = [...(run.recorder.statuses.get(op)?.keys() ?? [])];
      expect(statuses).toEqual([statusOf[op]]);
    }
  });
});
