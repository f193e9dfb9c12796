/**
 * Loaded with `--import` into each process the load harness starts: every second it sends the
 * process's memory (`process.memoryUsage()`) to the harness over the IPC channel the harness
 * opened, and after each major (mark-compact) collection the heap it left: the live set, which a
 * leak raises and garbage piling up between collections does not. Inert without a channel.
 * Neither the timer, the observer nor the channel keeps the process alive.
 */
import { constants, PerformanceObserver } from 'node:perf_hooks';

if (typeof process.send === 'function') {
  let majorGcs = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if (entry.detail?.kind !== constants.NODE_PERFORMANCE_GC_MAJOR || !process.connected) continue;
      majorGcs += 1;
      process.send(
        { probe: 'gc', seq: majorGcs, heapUsed: process.memoryUsage().heapUsed },
        undefined,
        {},
        () => {},
      );
    }
  }).observe({ entryTypes: ['gc'] });
  const timer = setInterval(() => {
    if (!process.connected) return;
    const { rss, heapUsed, heapTotal, external } = process.memoryUsage();
    // With a callback a failed send is handed to it instead of becoming an 'error' event
    // (the harness has gone: nothing to report to).
    process.send(
      { probe: 'memory', at: Date.now(), rss, heapUsed, heapTotal, external },
      undefined,
      {},
      () => {},
    );
  }, 1000);
  timer.unref();
  process.channel?.unref();
}
