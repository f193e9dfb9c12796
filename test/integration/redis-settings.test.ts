import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readRedisSettings } from '../../src/platform/redis.ts';
import { createTestApp, services } from '../helpers/harness.ts';
import { type OwnRedis, startOwnRedis } from '../helpers/own-redis.ts';

/** Start-up reads the Redis server's eviction and persistence settings and warns about risky ones. */
// Skipped only outside CI when Redis is not reachable (the run says so); with CI=true the global
// setup fails the whole run instead, so CI never skips this.
// On a redis-server of its own: the test changes a setting (CONFIG SET), never done to the shared one.
describe.skipIf(!services.redis)('Redis settings at start-up', () => {
  let own: OwnRedis;
  let redis: Redis;
  let policy: string;
  beforeAll(async () => {
    own = await startOwnRedis();
    redis = new Redis(own.url);
    const settings = await readRedisSettings(redis);
    expect(settings).not.toBeNull();
    policy = settings!.maxmemoryPolicy;
  });
  afterAll(async () => {
    redis?.disconnect();
    await own?.stop();
  });

  it('reads the server’s own settings', async () => {
    const [, appendonly] = (await redis.call('CONFIG', 'GET', 'appendonly')) as string[];
    const [, save] = (await redis.call('CONFIG', 'GET', 'save')) as string[];
    expect(await readRedisSettings(redis)).toEqual({ maxmemoryPolicy: policy, appendonly, save });
  });

  it('warns at start-up when the server may evict keys, naming the policy and the fix', async () => {
    const lines: Array<{ level: number; msg: string }> = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(JSON.parse(String(chunk)));
        done();
      },
    });
    await redis.call('CONFIG', 'SET', 'maxmemory-policy', 'volatile-lru');
    try {
      const app = await createTestApp({
        redis: true,
        config: { redisUrl: own.url },
        logger: pino({ level: 'warn' }, sink),
      });
      await app.close();
    } finally {
      await redis.call('CONFIG', 'SET', 'maxmemory-policy', policy);
    }
    const warning = lines.find((l) => l.msg.includes('maxmemory-policy'));
    expect(warning?.level).toBe(40);
    expect(warning?.msg).toContain('volatile-lru');
    expect(warning?.msg).toContain('set maxmemory-policy noeviction');
  });
});
