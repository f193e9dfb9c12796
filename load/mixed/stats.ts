/**
 * The pure arithmetic of the load report: latency percentiles, per-second series, and the
 * least-squares slope of a memory series (a soak's growth trend). No IO here, so it is unit-tested
 * (test/unit/load-report.test.ts).
 */

export interface LatencySummary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

const round2 = (ms: number) => Math.round(ms * 100) / 100;

/**
 * Nearest-rank percentile of sorted values: the smallest value with at least q of the values at or
 * below it (0 for no values).
 */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** p50, p95, p99 and max of latencies in ms, to a hundredth of a millisecond. */
export function summarize(latencies: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(latencies).sort();
  return {
    count: sorted.length,
    p50: round2(percentile(sorted, 0.5)),
    p95: round2(percentile(sorted, 0.95)),
    p99: round2(percentile(sorted, 0.99)),
    max: round2(sorted[sorted.length - 1] ?? 0),
  };
}

export interface SecondPoint {
  /** Seconds since the start of the run. */
  second: number;
  count: number;
  p50: number;
  p99: number;
}

/** Per-second p50 and p99 of latencies bucketed by the second they were answered in. */
export function perSecond(buckets: ReadonlyMap<number, number[]>): SecondPoint[] {
  return [...buckets.keys()]
    .sort((a, b) => a - b)
    .map((second) => {
      const s = summarize(buckets.get(second)!);
      return { second, count: s.count, p50: s.p50, p99: s.p99 };
    });
}

export interface Trend {
  /** Least-squares slope in MB per minute over the samples after the warm-up. */
  mbPerMinute: number;
  /** Coefficient of determination of the fit (0 when the series is flat). */
  r2: number;
  /** Samples the fit used. */
  samples: number;
  growing: boolean;
}

/**
 * A growth trend: a slope of at least this many MB per minute, and a fit that explains at least
 * half of the variance (a garbage collector's sawtooth has a slope too, but a poor fit).
 */
export const GROWTH_MB_PER_MINUTE = 1;
export const GROWTH_MIN_R2 = 0.5;

/**
 * The least-squares slope of a memory series (`t` in ms, `bytes`) after dropping the first
 * `warmup` fraction of the samples (caches filling, the JIT settling).
 */
export function memoryTrend(points: ReadonlyArray<{ t: number; bytes: number }>, warmup = 0.2): Trend {
  const kept = points.slice(Math.floor(points.length * warmup));
  const n = kept.length;
  if (n < 3) return { mbPerMinute: 0, r2: 0, samples: n, growing: false };
  const xs = kept.map((p) => p.t / 60_000);
  const ys = kept.map((p) => p.bytes / 1_048_576);
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (let i = 0; i < n; i++) {
    const dx = xs[i]! - mx;
    const dy = ys[i]! - my;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  if (sxx === 0) return { mbPerMinute: 0, r2: 0, samples: n, growing: false };
  const slope = sxy / sxx;
  const r2 = syy === 0 ? 0 : (sxy * sxy) / (sxx * syy);
  return {
    mbPerMinute: Math.round(slope * 1000) / 1000,
    r2: Math.round(r2 * 1000) / 1000,
    samples: n,
    growing: slope >= GROWTH_MB_PER_MINUTE && r2 >= GROWTH_MIN_R2,
  };
}

/** Picks one of `weights.length` choices with probability proportional to its weight, from `u` in [0, 1). */
export function weightedPick(weights: readonly number[], u: number): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let at = u * total;
  for (let i = 0; i < weights.length; i++) {
    at -= weights[i]!;
    if (at < 0) return i;
  }
  return weights.length - 1;
}
