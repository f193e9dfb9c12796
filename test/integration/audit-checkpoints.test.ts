import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { runAuditCommand } from '../../src/modules/audit/cli.ts';
import { toAuditEvent } from '../../src/modules/audit/repo.ts';
import { asStoredJson, type ChainedFields, chainHash, GENESIS_HASH } from '../../src/platform/audit-chain.ts';
import type { ManualClock } from '../../src/platform/clock.ts';
import { createTestApp, createTestDatabase, frozenClock, type TestApp } from '../helpers/harness.ts';

interface Verification {
  ok: boolean;
  checked: number;
  first_broken_id?: string;
  checkpoints_checked: number;
  first_broken_checkpoint?: { id: string; created_at: string; reason: string };
}

const opened: Array<{ close(): Promise<void> }> = [];
afterEach(async () => {
  for (const app of opened.splice(0).reverse()) await app.close();
});

async function open(options: Parameters<typeof createTestApp>[0] = {}): Promise<TestApp> {
  const app = await createTestApp(options);
  opened.push(app);
  return app;
}

async function mutate(app: TestApp, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const res = await app.json('POST', '/v1/api-keys', { name: `k${i}`, scopes: ['check'] });
    expect(res.status).toBe(201);
  }
}

async function verify(app: TestApp): Promise<Verification> {
  const res = await app.json<Verification>('GET', '/v1/audit-events/verify');
  expect(res.status).toBe(200);
  return res.body;
}

async function exportAll(app: TestApp): Promise<number> {
  const res = await app.request('GET', '/v1/audit-events/export');
  expect(res.status).toBe(200);
  return (await res.text()).trim().split('\n').length;
}

/**
 * The attack a database writer can make: edit one event, recompute the hash of it and of every
 * later event, and move `audit_heads` to the new last hash. The chain alone then verifies.
 */
async function rewriteHistory(app: TestApp, environment: string, index: number): Promise<void> {
  const db = app.runtime.deps.db;
  const rows = await db
    .selectFrom('audit_events')
    .selectAll()
    .where('environment', '=', environment)
    .orderBy('chain_index')
    .execute();
  let prev = GENESIS_HASH;
  for (const row of rows) {
    const { hash: _old, ...fields } = toAuditEvent(row);
    if (fields.chain_index === index) fields.after = asStoredJson({ name: 'forged' });
    fields.prev_hash = prev;
    const hash = chainHash(fields as ChainedFields);
    await sql`UPDATE audit_events SET after = ${fields.after === null ? null : JSON.stringify(fields.after)}::jsonb,
                prev_hash = ${prev}, hash = ${hash} WHERE id = ${row.id}`.execute(db);
    prev = hash;
  }
  await sql`UPDATE audit_heads SET last_hash = ${prev} WHERE environment = ${environment}`.execute(db);
}

describe('signed audit checkpoints', () => {
  it('export writes a checkpoint, and an untouched chain with checkpoints verifies ok', async () => {
    const app = await open();
    await mutate(app, 3);
    expect(await verify(app)).toMatchObject({ ok: true, checkpoints_checked: 0 });
    expect(await exportAll(app)).toBeGreaterThanOrEqual(4);
    await mutate(app, 2);
    await exportAll(app);
    const result = await verify(app);
    expect(result).toEqual({ ok: true, checked: result.checked, checkpoints_checked: 2 });
    expect(result.checked).toBeGreaterThanOrEqual(6);
  });

  it('the scheduler writes one periodically, only when the interval passed and the head moved', async () => {
    const clock: ManualClock = frozenClock('2026-03-01T00:00:00.000Z');
    const app = await open({ clock, config: { auditCheckpointSeconds: 300 } });
    await mutate(app, 2);
    await app.runtime.scheduler.runOnce(clock.now());
    expect((await verify(app)).checkpoints_checked).toBe(1);
    clock.advance(10_000);
    await mutate(app, 1);
    await app.runtime.scheduler.runOnce(clock.now());
    expect((await verify(app)).checkpoints_checked).toBe(1);
    clock.advance(300_000);
    await app.runtime.scheduler.runOnce(clock.now());
    expect((await verify(app)).checkpoints_checked).toBe(2);
    clock.advance(600_000);
    await app.runtime.scheduler.runOnce(clock.now());
    expect(await verify(app)).toMatchObject({ ok: true, checkpoints_checked: 2 });
  });

  it('catches a rewritten history whose hashes and head were all recomputed, at the first checkpoint after it', async () => {
    const app = await open();
    await mutate(app, 3);
    await exportAll(app); // checkpoint 1: before the rewritten event
    const before = await app.runtime.deps.db
      .selectFrom('audit_heads')
      .select('last_index')
      .where('environment', '=', 'test')
      .executeTakeFirstOrThrow();
    await mutate(app, 3);
    await exportAll(app); // checkpoint 2: covers it
    await mutate(app, 2);
    await exportAll(app); // checkpoint 3
    const checkpoints = await verify(app);
    expect(checkpoints).toMatchObject({ ok: true, checkpoints_checked: 3 });

    await rewriteHistory(app, 'test', before.last_index + 2);
    const result = await verify(app);
    // The chain alone no longer shows anything...
    expect(result.first_broken_id).toBeUndefined();
    // ...but the signed checkpoint does.
    expect(result.ok).toBe(false);
    expect(result.checkpoints_checked).toBe(1);
    const second = await app.runtime.deps.db
      .selectFrom('audit_checkpoints')
      .select(['id', 'created_at'])
      .where('environment', '=', 'test')
      .orderBy('seq')
      .offset(1)
      .limit(1)
      .executeTakeFirstOrThrow();
    expect(result.first_broken_checkpoint).toEqual({
      id: second.id,
      created_at: second.created_at.toISOString(),
      reason: 'event_mismatch',
    });
    // The other environment's chain is untouched.
    const live = await app.json<Verification>('GET', '/v1/audit-events/verify', undefined, {
      key: app.liveAdminKey,
    });
    expect(live.body.ok).toBe(true);
  });

  it('catches an edited checkpoint, a deleted one, and a chain cut below a checkpoint', async () => {
    const app = await open();
    for (let i = 0; i < 3; i++) {
      await mutate(app, 2);
      await exportAll(app);
    }
    const db = app.runtime.deps.db;
    const rows = await db
      .selectFrom('audit_checkpoints')
      .selectAll()
      .where('environment', '=', 'test')
      .orderBy('seq')
      .execute();
    expect(rows).toHaveLength(3);

    // Edited: the checkpoint now names another hash (say, the forger's).
    await sql`UPDATE audit_checkpoints SET event_hash = ${'f'.repeat(64)} WHERE id = ${rows[1]!.id}`.execute(
      db,
    );
    expect((await verify(app)).first_broken_checkpoint).toMatchObject({
      id: rows[1]!.id,
      reason: 'bad_signature',
    });
    await sql`UPDATE audit_checkpoints SET event_hash = ${rows[1]!.event_hash} WHERE id = ${rows[1]!.id}`.execute(
      db,
    );
    expect((await verify(app)).ok).toBe(true);

    // Deleted: the next one no longer follows its predecessor.
    await sql`DELETE FROM audit_checkpoints WHERE id = ${rows[1]!.id}`.execute(db);
    expect(await verify(app)).toMatchObject({
      ok: false,
      checkpoints_checked: 1,
      first_broken_checkpoint: { id: rows[2]!.id, reason: 'out_of_sequence' },
    });
    await db
      .insertInto('audit_checkpoints')
      .values({ ...rows[1]!, created_at: rows[1]!.created_at })
      .execute();
    expect((await verify(app)).ok).toBe(true);

    // Cut: the newest events and the head moved back below the last checkpoint.
    const last = rows[2]!;
    const keep = last.event_count - 1;
    const kept = await db
      .selectFrom('audit_events')
      .select('hash')
      .where('environment', '=', 'test')
      .where('chain_index', '=', keep)
      .executeTakeFirstOrThrow();
    await sql`DELETE FROM audit_events WHERE environment = 'test' AND chain_index > ${keep}`.execute(db);
    await sql`UPDATE audit_heads SET last_index = ${keep}, last_hash = ${kept.hash} WHERE environment = 'test'`.execute(
      db,
    );
    expect(await verify(app)).toMatchObject({
      ok: false,
      first_broken_checkpoint: { id: last.id, reason: 'event_missing' },
    });
  });

  it('reports checkpoints signed with another TESSERA_SECRET_KEY as such', async () => {
    const shared = await createTestDatabase();
    opened.push({ close: () => shared.drop() });
    const first = await open({ database: shared.database });
    await mutate(first, 1);
    await exportAll(first);
    const second = await open({ database: shared.database, config: { secretKey: 'x'.repeat(40) } });
    const result = await verify(second);
    expect(result).toMatchObject({
      ok: false,
      checkpoints_checked: 0,
      first_broken_checkpoint: { reason: 'signed_with_another_key' },
    });
  });
});

describe('tessera audit', () => {
  it('checkpoint signs every environment head on demand, and verify reports each environment', async () => {
    const app = await open();
    await mutate(app, 2);
    const lines: string[] = [];
    const write = (text: string) => lines.push(...text.trim().split('\n'));
    expect(await runAuditCommand(app.runtime, ['checkpoint'], write)).toBe(0);
    const written = lines.map((l) => JSON.parse(l) as { environment: string; seq: number });
    expect(written.map((c) => c.environment).sort()).toEqual(['live', 'test']);
    expect((await verify(app)).checkpoints_checked).toBe(1);

    lines.length = 0;
    expect(await runAuditCommand(app.runtime, ['checkpoint', '--env', 'test'], write)).toBe(0);
    expect(lines.map((l) => JSON.parse(l).environment)).toEqual(['test']);

    lines.length = 0;
    expect(await runAuditCommand(app.runtime, ['verify'], write)).toBe(0);
    expect(lines.map((l) => JSON.parse(l))).toContainEqual(
      expect.objectContaining({ environment: 'test', ok: true, checkpoints_checked: 2 }),
    );
    await rewriteHistory(app, 'test', 2);
    lines.length = 0;
    expect(await runAuditCommand(app.runtime, ['verify', '--env', 'test'], write)).toBe(1);
    expect(await runAuditCommand(app.runtime, ['nonsense'], write)).toBe(2);
  });
});
