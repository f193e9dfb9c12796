import { type Kysely, sql } from 'kysely';

/**
 * Access requests, the rest: approval policies gain `conditions` (size and customer attributes);
 * a pending request carries its current stage's deadline, so the scheduler's timeout step reads
 * only the requests whose deadline passed (a partial index) instead of every pending request; and
 * requests can be listed per customer.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('approval_policies').addColumn('conditions', 'jsonb').execute();
  await db.schema.alterTable('access_requests').addColumn('stage_deadline_at', 'timestamptz').execute();
  // Pending requests made before this migration: the deadline of the stage they wait on, unless
  // that stage was already escalated (an escalated stage has no further timeout).
  await sql`
    UPDATE access_requests r
       SET stage_deadline_at = r.stage_started_at
             + ((p.stages -> r.stage ->> 'timeout_hours')::int * interval '1 hour')
      FROM approval_policies p
     WHERE p.id = r.policy_id
       AND r.status = 'pending'
       AND (p.stages -> r.stage ->> 'timeout_hours') IS NOT NULL
       AND NOT EXISTS (
             SELECT 1 FROM jsonb_array_elements(r.decisions) d
              WHERE d ->> 'decision' = 'escalated' AND (d ->> 'stage')::int = r.stage)`.execute(db);
  await sql`DROP INDEX IF EXISTS access_requests_pending`.execute(db);
  await sql`CREATE INDEX access_requests_deadline ON access_requests (stage_deadline_at) WHERE status = 'pending' AND stage_deadline_at IS NOT NULL`.execute(
    db,
  );
  await sql`CREATE INDEX access_requests_customer ON access_requests (environment, customer_id, created_at, id)`.execute(
    db,
  );
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX IF EXISTS access_requests_customer`.execute(db);
  await sql`DROP INDEX IF EXISTS access_requests_deadline`.execute(db);
  await sql`CREATE INDEX access_requests_pending ON access_requests (stage_started_at) WHERE status = 'pending'`.execute(
    db,
  );
  await db.schema.alterTable('access_requests').dropColumn('stage_deadline_at').execute();
  await db.schema.alterTable('approval_policies').dropColumn('conditions').execute();
}
