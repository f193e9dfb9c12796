import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/platform/logger.ts';
import { runMeteringJob } from '../../src/workers/usage-flush.ts';

const logger = createLogger('silent');
const timing = { jobMs: 400, flushEveryMs: 50, sweepEveryMs: 150 };

function fakeMetering(failFlushes = 0) {
  const calls = { flush: 0, sweep: 0 };
  return {
    calls,
    metering: {
      async flush() {
        calls.flush += 1;
        if (calls.flush <= failFlushes) throw new Error('ledger unavailable');
        return 2;
      },
      async sweep() {
        calls.sweep += 1;
        return 0;
      },
    },
  };
}

describe('a metering job', () => {
  it('flushes every interval and sweeps less often until its time is up', async () => {
    const { calls, metering } = fakeMetering();
    const began = Date.now();
    const flushed = await runMeteringJob(metering, new AbortController().signal, logger, timing);
    const took = Date.now() - began;
    // About 400 ms: one flush every 50 ms, a sweep every 150 ms (the first at once).
    expect(took).toBeGreaterThanOrEqual(300);
    expect(took).toBeLessThan(1_000);
    expect(calls.flush).toBeGreaterThanOrEqual(5);
    expect(calls.flush).toBeLessThanOrEqual(9);
    expect(calls.sweep).toBeGreaterThanOrEqual(2);
    expect(calls.sweep).toBeLessThan(calls.flush);
    expect(flushed).toBe(2 * calls.flush);
  });

  it('goes on after a failed flush (the entries stay in the streams for the next one)', async () => {
    const { calls, metering } = fakeMetering(2);
    const flushed = await runMeteringJob(metering, new AbortController().signal, logger, timing);
    expect(calls.flush).toBeGreaterThan(3);
    expect(flushed).toBe(2 * (calls.flush - 2));
  });

  it('ends at once when shutdown aborts it', async () => {
    const { metering } = fakeMetering();
    const stop = new AbortController();
    const began = Date.now();
    const running = runMeteringJob(metering, stop.signal, logger, { ...timing, jobMs: 60_000 });
    setTimeout(() => stop.abort(), 120);
    await running;
    expect(Date.now() - began).toBeLessThan(500);
  });
});
