import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/platform/clock.ts';
import { purgeExpiredIdempotencyKeys } from '../../src/platform/idempotency.ts';
import { createTestApp, type TestApp } from '../helpers/harness.ts';

/** Counts the statements a Kysely instance runs. */
class QueryCounter implements KyselyPlugin {
  count = 0;
  transformQuery(args: PluginTransformQueryArgs) {
    this.count += 1;
    return args.node;
  }
  async transformResult(args: PluginTransformResultArgs) {
    return args.result;
  }
}

const HOUR = 3_600_000;

// Years ahead of the database's own clock: a purge by SQL now() would find nothing expired.
const clock = new ManualClock('2031-03-01T09:00:00.000Z');
let app: TestApp;
beforeAll(async () => {
  app = await createTestApp({ clock, config: { idempotencyTtlSeconds: 3_600 } });
});
afterAll(async () => app?.close());

const storedKeys = async () =>
  (await app.runtime.deps.db.selectFrom('idempotency_keys').select('key').orderBy('key').execute()).map(
    (r) => r.key,
  );

const createFeature = (key: string, idempotencyKey: string) =>
  app.json(
    'POST',
    '/v1/features',
    { key, name: key, type: 'boolean' },
    {
      headers: { 'idempotency-key': idempotencyKey },
    },
  );

describe('purging expired idempotency records', () => {
  it('the scheduler deletes the records expired by the injected clock and keeps the live ones', async () => {
    expect((await createFeature('sso', 'old')).status).toBe(201);
    clock.advance(HOUR / 2);
    expect((await createFeature('audit_log', 'recent')).status).toBe(201);
    clock.advance(HOUR / 2);
    // `old` expires now (created an hour ago); `recent` has half an hour left.
    const run = await app.runtime.scheduler.runOnce();
    expect(run.idempotencyKeysPurged).toBe(1);
    expect(await storedKeys()).toEqual(['recent']);

    // The live record still answers as before; the purged key is free again.
    const replay = await createFeature('audit_log', 'recent');
    expect(replay.status).toBe(201);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect((await createFeature('theme', 'old')).status).toBe(201);
    expect(await storedKeys()).toEqual(['old', 'recent']);
  });

  it('deletes a large backlog in batches, one short statement each', async () => {
    const db = app.runtime.deps.db;
    const now = clock.now();
    const keyId = (await db.selectFrom('api_keys').select('id').executeTakeFirstOrThrow()).id;
    const row = (key: string, expiresAt: Date) => ({
      environment: 'test',
      api_key_id: keyId,
      key,
      method: 'POST',
      path: '/v1/features',
      request_hash: 'h',
      status_code: 201,
      response_body: '{}',
      created_at: new Date(expiresAt.getTime() - HOUR),
      expires_at: expiresAt,
    });
    await db.deleteFrom('idempotency_keys').execute();
    await db
      .insertInto('idempotency_keys')
      .values([
        ...Array.from({ length: 25 }, (_, i) => row(`expired-${i}`, new Date(now.getTime() - i * 1000))),
        ...Array.from({ length: 5 }, (_, i) => row(`live-${i}`, new Date(now.getTime() + 1 + i * 1000))),
      ])
      .execute();
    const counter = new QueryCounter();
    const purged = await purgeExpiredIdempotencyKeys(db.withPlugin(counter), now, { batchSize: 10 });
    expect(purged).toBe(25);
    // 10 + 10 + 5: the short batch shows nothing is left.
    expect(counter.count).toBe(3);
    expect(await storedKeys()).toEqual(['live-0', 'live-1', 'live-2', 'live-3', 'live-4']);

    // At most maxBatches statements per call; the next call takes the rest.
    clock.advance(10_000);
    const limited = new QueryCounter();
    expect(
      await purgeExpiredIdempotencyKeys(db.withPlugin(limited), clock.now(), { batchSize: 2, maxBatches: 1 }),
    ).toBe(2);
    expect(limited.count).toBe(1);
    expect(await purgeExpiredIdempotencyKeys(db, clock.now())).toBe(3);
    expect(await storedKeys()).toEqual([]);
  });
});
