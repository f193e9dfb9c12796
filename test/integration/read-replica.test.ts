import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { type Database, openDatabase } from '../../src/platform/db.ts';
import { createTestApp, type TestApp } from '../helpers/harness.ts';
import { type OwnPostgres, startOwnPostgres, startReplica } from '../helpers/own-postgres.ts';

/**
 * Tessera on a primary and a streaming replica of it (pg_basebackup, both servers of this test's
 * own): checks that miss the cache load from the replica while the primary takes the writes, and a
 * check after a write on this node is answered from the primary while the replica lags behind it.
 */
const hasPostgresBinaries = (() => {
  try {
    execFileSync('pg_config', ['--bindir'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

type Reason = 'primary_only' | 'current' | 'replica_behind' | 'replica_error' | 'replica_resting';
const SOURCE: Record<Reason, string> = {
  primary_only: 'primary',
  current: 'replica',
  replica_behind: 'primary',
  replica_error: 'primary',
  replica_resting: 'primary',
};

describe.skipIf(!hasPostgresBinaries)('snapshot loads from a read replica', () => {
  let primary: OwnPostgres;
  let replica: OwnPostgres;
  let database: Database;
  let app: TestApp;

  beforeAll(async () => {
    primary = await startOwnPostgres();
    await primary.createDatabase('tessera');
    replica = await startReplica(primary);
    const databaseUrl = primary.urlFor('tessera');
    database = await openDatabase({ databaseUrl, databasePoolSize: 5, dataDir: '' });
    app = await createTestApp({
      database,
      config: { databaseUrl, databaseReplicaUrl: replica.urlFor('tessera') },
    });
    await api('POST', '/v1/features', { key: 'sso', name: 'SSO', type: 'boolean' });
    await api('POST', '/v1/plans', {
      key: 'pro',
      name: 'Pro',
      entitlements: [{ feature: 'sso', enabled: true }],
    });
    for (let i = 0; i < 20; i++) {
      await api('PUT', `/v1/customers/c${i}`, { name: `Customer ${i}` });
      await api('POST', `/v1/customers/c${i}/subscriptions`, { plan: 'pro' });
    }
  }, 120_000);

  afterAll(async () => {
    await app?.close();
    await database?.close();
    await replica?.destroy();
    await primary?.destroy();
  });

  async function api(method: string, path: string, body?: unknown) {
    const res = await app.json(method, path, body);
    expect(res.status, JSON.stringify(res.body)).toBeLessThan(300);
    return res.body;
  }

  async function check(customerId: string) {
    const res = await app.json<{ allowed: boolean; reason: string; version: number }>('POST', '/v1/check', {
      customer_id: customerId,
      feature: 'sso',
    });
    expect(res.status).toBe(200);
    return res.body;
  }

  /** Snapshot loads so far, by reason (the counters behind tessera_snapshot_loads_total). */
  function loads(reason: Reason): number {
    const metrics = app.runtime.deps.metrics;
    return metrics.tally(metrics.snapshotLoads, { source: SOURCE[reason], reason }).count;
  }

  /** Waits until the replica has replayed everything the primary has written so far. */
  async function replicaCaughtUp(): Promise<void> {
    const lsn = (await primary.psql('SELECT pg_current_wal_lsn()')).trim();
    const started = Date.now();
    while ((await replica.psql(`SELECT pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn`)).trim() !== 't') {
      if (Date.now() - started > 20_000) throw new Error('the replica did not catch up');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function versionOnReplica(customerId: string): Promise<number> {
    const out = await replica.psql(
      `SELECT coalesce(max(version), 0) FROM customers WHERE environment = 'test' AND customer_id = '${customerId}'`,
      'tessera',
    );
    return Number(out.trim());
  }

  const dropCachedSnapshots = () => app.runtime.deps.services.decisions.cache.invalidateEnvironment('test');

  it('answers cache misses from the replica while the primary takes writes', async () => {
    await replicaCaughtUp();
    dropCachedSnapshots();
    const fromReplica = loads('current');
    const fromPrimary = loads('replica_behind') + loads('replica_error') + loads('replica_resting');
    const [answers] = await Promise.all([
      Promise.all(Array.from({ length: 20 }, (_, i) => check(`c${i}`))),
      (async () => {
        for (let i = 0; i < 10; i++) await api('PUT', `/v1/customers/writer-${i}`, { name: 'written' });
      })(),
    ]);
    expect(answers.every((a) => a.allowed && a.reason === 'granted')).toBe(true);
    expect(loads('current') - fromReplica).toBe(20);
    expect(loads('replica_behind') + loads('replica_error') + loads('replica_resting')).toBe(fromPrimary);
    const written = await primary.psql(
      "SELECT count(*) FROM customers WHERE environment = 'test' AND customer_id LIKE 'writer-%'",
      'tessera',
    );
    expect(Number(written.trim())).toBe(10);
  });

  it('answers a check right after a write on this node from the primary while the replica lags', async () => {
    await replicaCaughtUp();
    expect((await check('c0')).allowed).toBe(true);
    await replica.psql('SELECT pg_wal_replay_pause()');
    try {
      await api('POST', '/v1/customers/c0/overrides', { feature: 'sso', enabled: false, reason: 'lag test' });
      const behind = loads('replica_behind');
      const answer = await check('c0');
      expect(answer).toMatchObject({ allowed: false, reason: 'disabled_by_override' });
      expect(loads('replica_behind')).toBe(behind + 1);
      // The replica really is behind: it still has the version before the override.
      expect(await versionOnReplica('c0')).toBeLessThan(answer.version);

      // A customer created on this node while the replica lags is unknown there: the primary answers.
      await api('PUT', '/v1/customers/newcomer', { name: 'New' });
      await api('POST', '/v1/customers/newcomer/subscriptions', { plan: 'pro' });
      expect(await check('newcomer')).toMatchObject({ allowed: true, reason: 'granted' });
      expect(loads('replica_behind')).toBe(behind + 2);
      expect(await versionOnReplica('newcomer')).toBe(0);

      // A customer whose last change the replica holds is still read there, lag or not.
      const current = loads('current');
      dropCachedSnapshots();
      expect((await check('c5')).allowed).toBe(true);
      expect(loads('current')).toBe(current + 1);
      // And c0 again, from its own cache miss: still the primary, never the older snapshot.
      expect(await check('c0')).toMatchObject({ allowed: false, reason: 'disabled_by_override' });
      expect(loads('replica_behind')).toBe(behind + 3);
    } finally {
      await replica.psql('SELECT pg_wal_replay_resume()');
    }
    // Caught up again, the replica serves c0's current snapshot.
    await replicaCaughtUp();
    dropCachedSnapshots();
    const current = loads('current');
    expect(await check('c0')).toMatchObject({ allowed: false, reason: 'disabled_by_override' });
    expect(loads('current')).toBe(current + 1);
  });

  it('falls back to the primary when the replica is unreachable, and leaves it alone for a while', async () => {
    await replica.stop('fast');
    try {
      dropCachedSnapshots();
      const errors = loads('replica_error');
      const resting = loads('replica_resting');
      expect(await check('c1')).toMatchObject({ allowed: true, reason: 'granted' });
      expect(loads('replica_error')).toBe(errors + 1);
      expect(await check('c2')).toMatchObject({ allowed: true, reason: 'granted' });
      expect(loads('replica_resting')).toBe(resting + 1);
      const exposed = await app.request('GET', '/metrics');
      expect(await exposed.text()).toMatch(
        /tessera_snapshot_loads_total\{source="primary",reason="replica_error"\} [1-9]/,
      );
    } finally {
      await replica.start();
    }
  });
});

describe('DATABASE_REPLICA_URL', () => {
  it('is refused in embedded mode, which has no replica', () => {
    expect(() => loadConfig({ DATABASE_REPLICA_URL: 'postgres://replica/tessera' })).toThrow(ConfigError);
    expect(() => loadConfig({ DATABASE_REPLICA_URL: 'postgres://replica/tessera' })).toThrow(
      /DATABASE_REPLICA_URL needs DATABASE_URL/,
    );
  });

  it('is read with DATABASE_URL, and names the field when it is not a postgres URL', () => {
    expect(
      loadConfig({ DATABASE_URL: 'postgres://primary/t', DATABASE_REPLICA_URL: 'postgres://replica/t' })
        .databaseReplicaUrl,
    ).toBe('postgres://replica/t');
    expect(() =>
      loadConfig({ DATABASE_URL: 'postgres://primary/t', DATABASE_REPLICA_URL: 'mysql://x' }),
    ).toThrow(/DATABASE_REPLICA_URL/);
  });
});
