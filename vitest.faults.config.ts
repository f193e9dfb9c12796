import { defineConfig } from 'vitest/config';

/**
 * The fault suite (`npm run test:faults`): real `tessera serve` and `tessera worker` processes
 * against a PostgreSQL and a Redis of each test file's own, which the tests stop, restart and
 * kill. No global setup: these files never use the machine's shared services. One file at a
 * time: each runs several Node processes and stops servers under them, and timings matter.
 */
export default defineConfig({
  test: {
    include: ['test/faults/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 90_000,
    reporters: ['default'],
  },
});
