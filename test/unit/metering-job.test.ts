import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/platform/logger.ts';
import { type JobTime, runMeteringJob } from '../../src/workers/usage-flush.ts';

const logger = createLogger('silent');
const timing = { jobMs: 400, flushEveryMs: 50, sweepEveryMs: 150 };

/** Time that passes only when the job waits (a manual clock): no test here sleeps. */
function manualTime(): JobTime & { elapsed(): number } {
  let now = 1_000_000;
  const start = now;
  return {
    now: () => now,
    async sleep(ms, signal) {
      if (signal.aborted) throw new Error('aborted');
      now += ms;
    },
    elapsed: () => now - start,
  };
}

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
    const time = manualTime();
    const flushed = await runMeteringJob(metering, new AbortController().signal, logger, timing, time);
    // 400 ms of the job's time: a flush every 50 ms (the last one 50 ms before the end), a sweep
    // every 150 ms, the first at once.
    expect(time.elapsed()).toBe(350);
    expect(calls.flush).toBe(8);
    expect(calls.sweep).toBe(3);
    expect(flushed).toBe(2 * calls.flush);
  });

  it('goes on after a failed flush (the entries stay in the streams for the next one)', async () => {
    const { calls, metering } = fakeMetering(2);
    const flushed = await runMeteringJob(
      metering,
      new AbortController().signal,
      logger,
      timing,
      manualTime(),
    );
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
