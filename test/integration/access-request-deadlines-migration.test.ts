import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateDown, migrateToLatest } from '../../src/platform/migrate.ts';
import { createTestDatabase } from '../helpers/harness.ts';

/** The deadline migration fills in `stage_deadline_at` for requests pending before it, and only for those. */
let database: Awaited<ReturnType<typeof createTestDatabase>>;
const MIGRATION = '20261207190500_access_request_deadlines';

beforeAll(async () => {
  database = await createTestDatabase();
  // Back to just before the migration (any later migrations go down first).
  for (let i = 0; i < 20; i++) if ((await migrateDown(database.database.db)).includes(MIGRATION)) break;
});
afterAll(async () => database?.drop());

describe('access request deadline migration', () => {
  it('backfills the pending stage deadline, not for escalated or decided requests', async () => {
    const db = database.database.db;
    const started = new Date('2026-05-01T00:00:00.000Z');
    await sql`INSERT INTO approval_policies (id, environment, name, kinds, auto_approve, stages, created_at)
      VALUES ('apol_m', 'test', 'm', '["override"]', false,
        ${JSON.stringify([
          { approvers: ['a'], timeout_hours: 24, on_timeout: 'escalate', escalate_to: ['b'] },
          { approvers: ['c'], timeout_hours: null, on_timeout: 'deny', escalate_to: null },
        ])}::jsonb,
        ${started})`.execute(db);
    const rows: Array<[string, string, number, unknown[]]> = [
      ['areq_pending', 'pending', 0, []],
      ['areq_escalated', 'pending', 0, [{ decision: 'escalated', stage: 0, at: started.toISOString() }]],
      ['areq_no_timeout', 'pending', 1, []],
      ['areq_denied', 'denied', 0, []],
    ];
    for (const [id, status, stage, decisions] of rows)
      await sql`INSERT INTO access_requests (id, environment, customer_id, kind, change, justification, status,
          stage, stage_started_at, policy_id, requested_by, decisions, created_at)
        VALUES (${id}, 'test', 'acme', 'override', '{}'::jsonb, 'j', ${status}, ${stage}, ${started}, 'apol_m', 'x',
          ${JSON.stringify(decisions)}::jsonb, ${started})`.execute(db);
    await migrateToLatest(db);
    const after = await sql<{ id: string; stage_deadline_at: Date | null }>`
      SELECT id, stage_deadline_at FROM access_requests ORDER BY id`.execute(db);
    expect(
      Object.fromEntries(after.rows.map((r) => [r.id, r.stage_deadline_at?.toISOString() ?? null])),
    ).toEqual({
      areq_denied: null,
      areq_escalated: null,
      areq_no_timeout: null,
      areq_pending: '2026-05-02T00:00:00.000Z',
    });
  });
});
