import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CUSTOMERS,
  call,
  type Deployment,
  deploy,
  expectOverQuotaDenied,
  expectStatus,
  faultToolsMissing,
  OVER,
  sleep,
  subscribe,
  trace,
  until,
} from './cluster.ts';
import { settled } from './ledger.ts';
import { startLoad, summary } from './load.ts';

/**
 * PostgreSQL crashes under load (`pg_ctl stop -m immediate`) and comes back 6 s later (longer
 * than an API key stays cached), with the API and the worker left running. Meanwhile checks and
 * usage of customers the API has cached go on (usage is counted in Redis; the ledger write waits);
 * what needs the database answers 503 problem+json with Retry-After, never a 500. Afterwards the
 * same processes serve again (the pg pool reconnects) and the ledger holds every accepted event once.
 */
describe.skipIf(faultToolsMissing() !== null)('PostgreSQL stopped and restarted mid-load', () => {
  let d: Deployment;
  beforeAll(async () => {
    d = await deploy();
    // A customer the API has never loaded: checking it needs the database.
    await subscribe(d.server.base, 'cold', 'big');
  });
  afterAll(async () => {
    await d?.cluster.close();
  });

  it('answers from cache or 503 with Retry-After while it is down, and recovers without restarts', async () => {
    const { server, worker, cluster } = d;
    const load = startLoad({
      base: () => server.base,
      customers: CUSTOMERS,
      overQuota: OVER,
      keyPrefix: 'p-',
    });
    let downAt = 0;
    let upAt = 0;
    try {
      await sleep(1_500);
      downAt = Date.now();
      await cluster.pg.stop('immediate');
      trace('postgres down');
      await sleep(6_000);
      // Needs the database: a customer not cached, and an admin write.
      for (const res of [
        await call(server.base, 'POST', '/v1/check', { customer_id: 'cold', feature: 'sso' }),
        await call(server.base, 'PUT', '/v1/customers/new-one', { name: 'New' }),
      ]) {
        const text = await res.text();
        expect(res.status, text).toBe(503);
        expect(res.headers.get('retry-after'), text).toMatch(/^\d+$/);
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(JSON.parse(text)).toMatchObject({ status: 503, code: 'database_unavailable' });
      }
      // Cached: a boolean check, and usage (counted in Redis).
      await expectStatus(call(server.base, 'POST', '/v1/check', { customer_id: 'c1', feature: 'sso' }), 200);
      expect(
        await expectStatus(
          call(server.base, 'POST', '/v1/usage', {
            customer_id: 'c2',
            feature: 'calls',
            idempotency_key: 'p-down',
          }),
          200,
        ),
      ).toMatchObject({ accepted: true });
      load.answers.accepted.set('p-down', { value: 1, at: Date.now() });
      await cluster.pg.start();
      upAt = Date.now();
      trace('postgres up');
      // The pool reconnects: admin writes work again without restarting anything.
      await until(
        'an admin write',
        async () => (await call(server.base, 'PUT', '/v1/customers/new-one', { name: 'New' })).status === 201,
      );
      trace('admin write ok');
      await sleep(1_500);
    } finally {
      await load.stop();
    }
    const { answers } = load;
    const why = `${summary(answers)}\nserver: ${server.output()}\nworker: ${worker.output()}`;
    expect(answers.wrongAllows, why).toEqual([]);
    expect(answers.anomalies, why).toEqual([]);
    // Usage went on while the database was down.
    const acceptedDuringOutage = [...answers.accepted.values()].filter((a) => a.at > downAt && a.at < upAt);
    expect(acceptedDuringOutage.length, why).toBeGreaterThan(50);
    expect(server.alive() && worker.alive(), why).toBe(true);

    const count = await settled(cluster, answers, 'p-');
    expect(count.missing).toEqual([]);
    expect(count.twice).toEqual([]);
    expect(count.wrongValue).toEqual([]);
    await expectStatus(call(server.base, 'POST', '/v1/check', { customer_id: 'cold', feature: 'sso' }), 200);
    await expectOverQuotaDenied(server);
    expect(server.alive() && worker.alive()).toBe(true);
  });
});
