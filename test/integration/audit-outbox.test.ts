import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext, withTransaction } from '../../src/platform/context.ts';
import { type DispatchedEvent, OutboxDispatcher } from '../../src/platform/outbox.ts';
import { createTestApp, type TestApp } from '../helpers/harness.ts';
import { expectAdminOnly } from '../helpers/security.ts';

let app: TestApp;
beforeAll(async () => {
  app = await createTestApp();
});
afterAll(async () => app?.close());

async function createKeys(n: number, key?: string) {
  return Promise.all(
    Array.from({ length: n }, (_, i) =>
      app.json('POST', '/v1/api-keys', { name: `k${i}`, scopes: ['check'] }, key ? { key } : {}),
    ),
  );
}

describe('audit log', () => {
  it('records every mutation with actor, target, before/after and request id', async () => {
    const created = await app.json<{ id: string }>(
      'POST',
      '/v1/api-keys',
      { name: 'audited', scopes: ['check'] },
      { headers: { 'x-request-id': 'req-audit-1' } },
    );
    const res = await app.json<{ data: Array<Record<string, unknown>> }>(
      'GET',
      `/v1/audit-events?action=api_key.created`,
    );
    const event = res.body.data.find((e) => (e.target as { id: string }).id === created.body.id);
    expect(event).toMatchObject({
      action: 'api_key.created',
      actor: { type: 'api_key', name: 'bootstrap (TESSERA_ADMIN_KEY)' },
      target: { type: 'api_key', id: created.body.id },
      request_id: 'req-audit-1',
      before: null,
      after: { name: 'audited' },
    });
    expect(JSON.stringify(event)).not.toContain('secret');
  });

  it('chains hashes per environment and keeps 50 concurrent mutations in one unforked chain', async () => {
    await Promise.all([createKeys(30), createKeys(20, app.liveAdminKey)]);
    for (const key of [app.adminKey, app.liveAdminKey]) {
      const verify = await app.json<{ ok: boolean; checked: number }>(
        'GET',
        '/v1/audit-events/verify',
        undefined,
        { key },
      );
      expect(verify.body.ok).toBe(true);
      expect(verify.body.checked).toBeGreaterThanOrEqual(20);
    }
    const rows = await app.runtime.deps.db
      .selectFrom('audit_events')
      .select(['environment', 'chain_index'])
      .execute();
    const perEnv = new Map<string, number[]>();
    for (const r of rows) perEnv.set(r.environment, [...(perEnv.get(r.environment) ?? []), r.chain_index]);
    for (const indexes of perEnv.values()) {
      indexes.sort((a, b) => a - b);
      expect(indexes).toEqual(indexes.map((_, i) => i + 1));
    }
  });

  it('filters by actor, action prefix and time, and pages with a cursor', async () => {
    const byActor = await app.json<{ data: unknown[] }>(
      'GET',
      '/v1/audit-events?actor=live%20admin',
      undefined,
      { key: app.liveAdminKey },
    );
    expect(byActor.body.data.length).toBeGreaterThan(0);
    const prefix = await app.json<{ data: Array<{ action: string }> }>(
      'GET',
      '/v1/audit-events?action=api_key.*',
    );
    expect(prefix.body.data.every((e) => e.action.startsWith('api_key.'))).toBe(true);
    const future = await app.json<{ data: unknown[] }>('GET', '/v1/audit-events?since=2999-01-01T00:00:00Z');
    expect(future.body.data).toEqual([]);
    const first = await app.json<{ data: Array<{ id: string }>; next_cursor: string }>(
      'GET',
      '/v1/audit-events?limit=3',
    );
    const second = await app.json<{ data: Array<{ id: string }> }>(
      'GET',
      `/v1/audit-events?limit=3&cursor=${first.body.next_cursor}`,
    );
    expect(second.body.data[0]?.id).not.toBe(first.body.data[0]?.id);
    const bad = await app.json<{ errors: Array<{ path: string }> }>(
      'GET',
      '/v1/audit-events?since=yesterday',
    );
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0]?.path).toBe('query.since');
  });

  it('exports NDJSON', async () => {
    const res = await app.request('GET', '/v1/audit-events/export?action=api_key.created');
    expect(res.headers.get('content-type')).toContain('application/x-ndjson');
    const lines = (await res.text()).trim().split('\n');
    expect(lines.length).toBeGreaterThan(10);
    for (const line of lines) expect(JSON.parse(line)).toHaveProperty('hash');
  });

  it('detects a row edited in the database and names the first broken event', async () => {
    const { data } = (await app.json<{ data: Array<{ id: string }> }>('GET', '/v1/audit-events?limit=5'))
      .body;
    const victim = data[2]!;
    await sql`UPDATE audit_events SET after = '{"name":"forged"}'::jsonb WHERE id = ${victim.id}`.execute(
      app.runtime.deps.db,
    );
    const verify = await app.json('GET', '/v1/audit-events/verify');
    expect(verify.body).toMatchObject({ ok: false, first_broken_id: victim.id });
    // The live environment's chain is untouched.
    expect(
      (await app.json('GET', '/v1/audit-events/verify', undefined, { key: app.liveAdminKey })).body,
    ).toMatchObject({ ok: true });
  });

  it('detects a deleted row', async () => {
    const { data } = (
      await app.json<{ data: Array<{ id: string }> }>('GET', '/v1/audit-events?limit=5', undefined, {
        key: app.liveAdminKey,
      })
    ).body;
    await sql`DELETE FROM audit_events WHERE id = ${data[1]!.id}`.execute(app.runtime.deps.db);
    const verify = await app.json('GET', '/v1/audit-events/verify', undefined, { key: app.liveAdminKey });
    expect(verify.body).toMatchObject({ ok: false, first_broken_id: data[2]!.id });
  });

  it('is admin-only', async () => {
    await expectAdminOnly(app, 'GET', '/v1/audit-events');
    await expectAdminOnly(app, 'GET', '/v1/audit-events/verify');
    await expectAdminOnly(app, 'GET', '/v1/audit-events/export');
  });
});

describe('outbox', () => {
  async function emit(customerId: string | null, topic: string, n: number) {
    const ctx = systemContext(app.runtime.deps, 'test');
    for (let i = 0; i < n; i++) {
      await withTransaction(ctx, async (t) => t.emit({ topic, customerId, payload: { i } }));
    }
  }

  it('writes events only when the transaction commits', async () => {
    const ctx = systemContext(app.runtime.deps, 'test');
    await expect(
      withTransaction(ctx, async (t) => {
        t.emit({ topic: 'never', payload: {} });
        t.audit({ action: 'never.happened', target: { type: 'x', id: 'y' } });
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    const rows = await app.runtime.deps.db
      .selectFrom('outbox')
      .select('id')
      .where('topic', '=', 'never')
      .execute();
    expect(rows).toHaveLength(0);
    const audits = await app.runtime.deps.db
      .selectFrom('audit_events')
      .select('id')
      .where('action', '=', 'never.happened')
      .execute();
    expect(audits).toHaveLength(0);
  });

  it('delivers at least once, in order per customer, retrying failures with backoff', async () => {
    await emit('cust-a', 'test.ordered', 5);
    await emit('cust-b', 'test.ordered', 5);
    const seen: Array<[string | null, number]> = [];
    let failOnce = true;
    const dispatcher = new OutboxDispatcher(
      app.runtime.deps.db,
      app.runtime.deps.logger,
      app.runtime.deps.metrics,
      { pollMs: 10 },
    );
    dispatcher.on('test.ordered', async (e: DispatchedEvent) => {
      if (e.customerId === 'cust-a' && e.payload.i === 2 && failOnce) {
        failOnce = false;
        throw new Error('transient');
      }
      seen.push([e.customerId, e.payload.i as number]);
    });
    await dispatcher.drain();
    // cust-a is blocked behind its failed event; cust-b went on.
    expect(seen.filter(([c]) => c === 'cust-b').map(([, i]) => i)).toEqual([0, 1, 2, 3, 4]);
    expect(seen.filter(([c]) => c === 'cust-a').map(([, i]) => i)).toEqual([0, 1]);
    const failed = await app.runtime.deps.db
      .selectFrom('outbox')
      .selectAll()
      .where('topic', '=', 'test.ordered')
      .where('dispatched_at', 'is', null)
      .orderBy('id')
      .executeTakeFirstOrThrow();
    expect(failed.last_error).toBe('transient');
    expect(failed.next_attempt_at.getTime()).toBeGreaterThan(Date.now());
    await sql`UPDATE outbox SET next_attempt_at = now() WHERE id = ${failed.id}`.execute(app.runtime.deps.db);
    await dispatcher.drain();
    expect(seen.filter(([c]) => c === 'cust-a').map(([, i]) => i)).toEqual([0, 1, 2, 3, 4]);
  });

  it('never hands one event to two dispatchers at once', async () => {
    await emit(null, 'test.once', 1);
    for (let c = 0; c < 20; c++) await emit(`c${c}`, 'test.once', 3);
    const counts = new Map<number, number>();
    const make = () => {
      const d = new OutboxDispatcher(app.runtime.deps.db, app.runtime.deps.logger, app.runtime.deps.metrics, {
        pollMs: 10,
      });
      d.on('test.once', async (e) => {
        counts.set(e.id, (counts.get(e.id) ?? 0) + 1);
      });
      return d;
    };
    const [a, b, c] = [make(), make(), make()];
    await Promise.all([a.drain(), b.drain(), c.drain()]);
    expect(counts.size).toBe(61);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
  });
  it("marks a round's handled events at once and lets its handlers share a read", async () => {
    for (let c = 0; c < 8; c++) await emit(`round-${c}`, 'test.round', 1);
    await emit('round-fail', 'test.round', 1);
    let reads = 0;
    const dispatcher = new OutboxDispatcher(
      app.runtime.deps.db,
      app.runtime.deps.logger,
      app.runtime.deps.metrics,
      { pollMs: 10 },
    );
    dispatcher.on('test.round', async (e, round) => {
      const shared = await round.memo('shared', async () => {
        reads += 1;
        return 'value';
      });
      expect(shared).toBe('value');
      if (e.customerId === 'round-fail') throw new Error('refused');
    });
    expect(await dispatcher.runOnce()).toBe(8);
    expect(reads).toBe(1);
    const rows = await app.runtime.deps.db
      .selectFrom('outbox')
      .select(['customer_id', 'dispatched_at', 'last_error'])
      .where('topic', '=', 'test.round')
      .execute();
    expect(rows.filter((r) => r.dispatched_at !== null)).toHaveLength(8);
    // The failed one waits for its retry; the others were not held back by it.
    expect(rows.find((r) => r.customer_id === 'round-fail')).toMatchObject({
      dispatched_at: null,
      last_error: 'refused',
    });
  });
});
