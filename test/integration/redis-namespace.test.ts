import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/platform/logger.ts';
import { startRuntime } from '../../src/runtime.ts';
import { createTestApp, createTestDatabase, services, type TestApp } from '../helpers/harness.ts';
import { type OwnRedis, startOwnRedis } from '../helpers/own-redis.ts';

/**
 * Two deployments (two databases) on one Redis database and one key prefix: the second refuses to
 * start, before it reads or writes anything under the prefix. Against a redis-server of its own.
 */

const run = promisify(execFile);

describe.skipIf(!services.redis)('two deployments on one Redis namespace', () => {
  let own: OwnRedis;
  let first: TestApp;
  let otherDb: Awaited<ReturnType<typeof createTestDatabase>>;
  const prefix = `tessera-test:${randomBytes(6).toString('hex')}:`;

  beforeAll(async () => {
    own = await startOwnRedis();
    first = await createTestApp({ redis: true, config: { redisUrl: own.url, redisPrefix: prefix } });
    otherDb = await createTestDatabase();
  });
  afterAll(async () => {
    await first?.close();
    await otherDb?.drop();
    await own?.stop();
  });

  const configFor = (redisPrefix: string) => ({
    ...loadConfig({}),
    redisUrl: own.url,
    redisPrefix,
    logLevel: 'silent' as const,
    runWorkers: false,
  });

  it('refuses to start on a namespace another database claimed, naming the prefix, the other id and the fix', async () => {
    const firstId = (
      await sql<{ id: string }>`SELECT id FROM deployment_identity`.execute(first.runtime.deps.db)
    ).rows[0]?.id;
    expect(firstId).toBeTruthy();
    const redis = new Redis(own.url);
    try {
      const marker = await redis.get(`${prefix}u:marker`);
      const start = startRuntime(configFor(prefix), {
        database: otherDb.database,
        logger: createLogger('silent'),
        workers: false,
      });
      await expect(start).rejects.toThrow(prefix);
      await expect(start).rejects.toThrow(firstId!);
      await expect(start).rejects.toThrow(/REDIS_PREFIX/);
      // Nothing of the first deployment's was touched.
      expect(await redis.get(`${prefix}namespace`)).toBe(firstId);
      expect(await redis.get(`${prefix}u:marker`)).toBe(marker);
    } finally {
      redis.disconnect();
    }
    // With a prefix of its own it starts.
    const runtime = await startRuntime(configFor(`${prefix}other:`), {
      database: otherDb.database,
      logger: createLogger('silent'),
      workers: false,
    });
    await runtime.close();
  });

  it.skipIf(!services.postgres)('says so in one line when `tessera serve` is refused', async () => {
    const failed = await run(process.execPath, ['--import', 'tsx', 'src/main.ts', 'serve'], {
      env: {
        ...process.env,
        DATABASE_URL: otherDb.url!,
        REDIS_URL: own.url,
        REDIS_PREFIX: prefix,
        HOST: '127.0.0.1',
        PORT: '0',
        LOG_LEVEL: 'silent',
        RUN_WORKERS: 'false',
      },
      timeout: 30_000,
    }).then(
      () => null,
      (err: { code?: number; stderr?: string }) => err,
    );
    expect(failed).not.toBeNull();
    expect(failed!.code).toBe(1);
    const lines = (failed!.stderr ?? '').trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^tessera: .*REDIS_PREFIX/);
  });
});
