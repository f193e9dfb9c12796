import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/platform/logger.ts';
import { startUsageWorkers } from '../../src/workers/usage-flush.ts';
import { createTestApp, services, type TestApp } from '../helpers/harness.ts';
import { ledgerSum, meteredCustomer, use } from './metering-fixtures.ts';

/** The BullMQ job that moves accepted events into the ledger, as `tessera worker` runs it. */
describe.skipIf(!services.redis)('the usage worker', () => {
  let app: TestApp;
  let connection: Redis;
  let queue: Queue;
  beforeAll(async () => {
    app = await createTestApp({ redis: true });
    const { redisUrl, redisPrefix } = app.runtime.deps.config;
    connection = new Redis(redisUrl!, { maxRetriesPerRequest: null });
    queue = new Queue('usage', { connection, prefix: `${redisPrefix}bull` });
  });
  afterAll(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
    connection.disconnect();
    await app.close();
  });

  it('writes accepted events to the ledger within a second with no explicit flush, and stops promptly', async () => {
    // A scheduler an earlier version made for the sweep: the flush job runs the sweep now.
    await queue.upsertJobScheduler('usage-sweep', { every: 2_000 }, { name: 'sweep' });
    const workers = await startUsageWorkers(
      app.runtime.metering,
      app.runtime.deps.config,
      createLogger('silent'),
    );
    try {
      const schedulers = await queue.getJobSchedulers();
      expect(schedulers.map((s) => [s.key, s.every])).toEqual([['usage-flush', 5_000]]);

      const s = await meteredCustomer(app, { limit: 100 });
      // Wait for the first job to be running, so these events arrive while it is (a fixed wait
      // was too short on a loaded machine).
      const waiting = Date.now();
      while ((await queue.getActiveCount()) === 0 && Date.now() - waiting < 10_000)
        await new Promise((r) => setTimeout(r, 20));
      expect(await queue.getActiveCount()).toBe(1);
      for (let i = 0; i < 5; i++) expect((await use(s)).status).toBe(200);
      const sent = Date.now();
      let ledger = await ledgerSum(s);
      while (ledger.events < 5 && Date.now() - sent < 3_000) {
        await new Promise((r) => setTimeout(r, 25));
        ledger = await ledgerSum(s);
      }
      expect(ledger).toEqual({ counted: 5, events: 5 });
      expect(Date.now() - sent).toBeLessThan(1_000);
    } finally {
      // A job runs for 5 s; stopping does not wait for it to end.
      const stopping = Date.now();
      await workers.stop();
      expect(Date.now() - stopping).toBeLessThan(2_000);
    }
  });
});
