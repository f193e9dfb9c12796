/**
 * Loaded with `--import` into each process the load harness starts: every second it sends the
 * process's memory (`process.memoryUsage()`) to the harness over the IPC channel the harness
 * opened. Inert without one. Neither the timer nor the channel keeps the process alive.
 */
if (typeof process.send === 'function') {
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
