import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLUSH_GROUP, UsageKeys } from '../../src/modules/metering/redis/keys.ts';
import { SHARED_STREAM_SLOT } from '../../src/modules/metering/redis/store.ts';
import {
  CUSTOMERS,
  call,
  type Deployment,
  deploy,
  expectStatus,
  faultToolsMissing,
  OVER,
  type Proc,
  sleep,
  trace,
  until,
} from './cluster.ts';
import { settled } from './ledger.ts';
import { startLoad, summary } from './load.ts';

/**
 * A worker killed (SIGKILL) in the middle of its jobs, and another started in its place (the API
 * process keeps running): the usage flush it was doing is finished by the new one (every accepted
 * event in the ledger once), and the subscription scheduler's run it was in is run again without
 * recording any transition, audit event or outbox event twice.
 */
describe.skipIf(faultToolsMissing() !== null)('a worker killed mid-job', () => {
  let d: Deployment;
  let worker: Proc;
  beforeAll(async () => {
    d = await deploy();
    worker = d.worker;
  });
  afterAll(async () => {
    await d?.cluster.close();
  });

  const killed = async (proc: Proc) => {
    proc.child.kill('SIGKILL');
    await proc.exited();
  };

  it('mid usage flush: the next worker takes over its unacknowledged entries, every accepted event once', async () => {
    const { server, cluster } = d;
    const load = startLoad({
      base: () => server.base,
      customers: CUSTOMERS,
      overQuota: OVER,
      keyPrefix: 'k-',
      batchSize: 100,
      checkClients: 0,
    });
    const redis = new Redis(cluster.redis.url);
    const stream = new UsageKeys('tessera:').streamOfSlot(SHARED_STREAM_SLOT);
    const pending = async () => Number(((await redis.call('XPENDING', stream, FLUSH_GROUP)) as [number])[0]);
    try {
      // Killed while it holds entries it has read and not yet acknowledged (written or not). If
      // it acknowledged them in the instant before the signal landed, another worker is tried.
      let left = 0;
      for (let attempt = 0; attempt < 5 && left === 0; attempt++) {
        if (attempt > 0) worker = cluster.worker();
        await until('the worker reading', async () => (await pending()) > 0, 30_000);
        await killed(worker);
        left = await pending();
      }
      trace(`worker killed holding ${left} entries`);
      expect(left).toBeGreaterThan(0);
      await sleep(1_000);
    } finally {
      await load.stop();
      redis.disconnect();
    }
    const { answers } = load;
    expect(answers.anomalies, summary(answers)).toEqual([]);
    worker = cluster.worker();
    const count = await settled(cluster, answers, 'k-', { timeoutMs: 60_000 });
    trace('ledger settled');
    expect(count.missing).toEqual([]);
    expect(count.twice).toEqual([]);
    expect(count.wrongValue).toEqual([]);
    expect(server.alive()).toBe(true);
  });

  it('mid scheduler run: the next run records each due transition exactly once', async () => {
    const { server, cluster } = d;
    await killed(worker);
    // Subscriptions that start in a few seconds: the scheduler records each start when it is due.
    const n = 300;
    const startsAt = new Date(Date.now() + 8_000).toISOString();
    const ids = Array.from({ length: n }, (_, i) => `s${i}`);
    for (let i = 0; i < n; i += 50)
      await Promise.all(
        ids.slice(i, i + 50).map(async (id) => {
          await expectStatus(call(server.base, 'PUT', `/v1/customers/${id}`, { name: id }), 201);
          const sub = await expectStatus(
            call(server.base, 'POST', `/v1/customers/${id}/subscriptions`, {
              plan: 'big',
              starts_at: startsAt,
            }),
            201,
          );
          expect(sub, 'created before it starts').toMatchObject({ status: 'scheduled' });
        }),
      );
    trace('subscriptions created');
    const recorded = async () =>
      Number(
        (
          await cluster.query<{ n: string }>(
            `SELECT count(*)::text AS n FROM subscriptions WHERE customer_id LIKE 's%' AND status = 'active'`,
          )
        )[0]!.n,
      );
    await until('the starts to be due', async () => Date.now() > Date.parse(startsAt) + 200);
    const first = cluster.worker();
    await until('the scheduler recording', async () => (await recorded()) > 0, 60_000);
    await killed(first);
    const atKill = await recorded();
    trace(`worker killed after ${atKill} of ${n}`);
    expect(atKill).toBeLessThan(n);

    worker = cluster.worker();
    await until('every start recorded', async () => (await recorded()) === n, 60_000);
    trace('all recorded');
    // Exactly once: one transition record, one audit event and one outbox event per subscription.
    const perSubscription = async (sql: string) =>
      (await cluster.query<{ id: string; n: string }>(sql)).filter((r) => r.n !== '1');
    expect(
      await perSubscription(
        `SELECT s.id, count(t.*)::text AS n FROM subscriptions s LEFT JOIN subscription_transitions t
           ON t.environment = s.environment AND t.subscription_id = s.id
          WHERE s.customer_id LIKE 's%' GROUP BY s.id`,
      ),
    ).toEqual([]);
    const audit = await cluster.query<{ customer_id: string; n: string }>(
      `SELECT customer_id, count(*)::text AS n FROM audit_events
        WHERE customer_id LIKE 's%' AND actor->>'type' = 'system' GROUP BY customer_id`,
    );
    expect(audit.length).toBe(n);
    expect(audit.filter((r) => r.n !== '1')).toEqual([]);
    const outbox = await cluster.query<{ customer_id: string; n: string }>(
      `SELECT customer_id, count(*)::text AS n FROM outbox
        WHERE customer_id LIKE 's%' AND topic = 'subscription.updated' AND payload->>'event' = 'start'
        GROUP BY customer_id`,
    );
    expect(outbox.length).toBe(n);
    expect(outbox.filter((r) => r.n !== '1')).toEqual([]);
    expect(server.alive() && worker.alive()).toBe(true);
  });
});
