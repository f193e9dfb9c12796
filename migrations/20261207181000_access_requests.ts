import { type Kysely, sql } from 'kysely';

/**
 * Governance of exceptions: groups of people (actors) per environment, the approval policies that
 * decide who approves which kind of change, and the access requests themselves with their decisions.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('actor_groups')
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('members', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('actor_groups_pkey', ['environment', 'key'])
    .execute();
  await db.schema
    .createTable('approval_policies')
    .addColumn('id', 'text', (c) => c.primaryKey())
    // Creation order, exact even for policies made in the same millisecond.
    .addColumn('seq', 'bigserial', (c) => c.notNull())
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('kinds', 'jsonb', (c) => c.notNull())
    .addColumn('features', 'jsonb')
    .addColumn('auto_approve', 'boolean', (c) => c.notNull())
    .addColumn('stages', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .execute();
  // "The first policy (oldest) that matches" reads policies in this order.
  await sql`CREATE INDEX approval_policies_order ON approval_policies (environment, seq)`.execute(db);
  await db.schema
    .createTable('access_requests')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('change', 'jsonb', (c) => c.notNull())
    .addColumn('justification', 'text', (c) => c.notNull())
    .addColumn('duration_hours', 'integer')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('stage', 'integer', (c) => c.notNull())
    .addColumn('stage_started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('policy_id', 'text', (c) => c.notNull().references('approval_policies.id'))
    .addColumn('requested_by', 'text', (c) => c.notNull())
    .addColumn('decisions', 'jsonb', (c) => c.notNull())
    .addColumn('applied', 'jsonb')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('decided_at', 'timestamptz')
    .execute();
  await sql`CREATE INDEX access_requests_list ON access_requests (environment, status, created_at, id)`.execute(
    db,
  );
  // The scheduler looks for pending requests whose stage may have timed out.
  await sql`CREATE INDEX access_requests_pending ON access_requests (stage_started_at) WHERE status = 'pending'`.execute(
    db,
  );
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('access_requests').execute();
  await db.schema.dropTable('approval_policies').execute();
  await db.schema.dropTable('actor_groups').execute();
}
