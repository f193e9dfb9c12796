import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { inject } from 'vitest';
import { PostgresUsageStore } from '../../src/modules/metering/postgres-store.ts';
import { loadScripts } from '../../src/modules/metering/redis-scripts.ts';
import { RedisUsageStore } from '../../src/modules/metering/redis-store.ts';
import { ManualClock } from '../../src/platform/clock.ts';
import { createLogger } from '../../src/platform/logger.ts';
import { createTestDatabase, services } from '../helpers/harness.ts';
import { describeUsageStoreContract } from './metering-contract.ts';

const start = '2026-01-15T12:00:00Z';

describeUsageStoreContract('postgres', async () => {
  const { database, drop } = await createTestDatabase();
  const clock = new ManualClock(start);
  return { store: new PostgresUsageStore(database.db, clock), db: database.db, clock, close: drop };
});

describeUsageStoreContract(
  'redis',
  async () => {
    const { database, drop } = await createTestDatabase();
    const clock = new ManualClock(start);
    const redis = new Redis(inject('redisUrl')!, { enableAutoPipelining: true });
    const prefix = `tessera-test:${randomBytes(6).toString('hex')}:`;
    await loadScripts(redis);
    const store = new RedisUsageStore(redis, database.db, prefix, clock, createLogger('silent'));
    return {
      store,
      db: database.db,
      clock,
      async close() {
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length) await redis.del(...keys);
        redis.disconnect();
        await drop();
      },
    };
  },
  services.redis,
);
