import { type Kysely, sql } from 'kysely';

/**
 * Anomaly flags raised by the periodic scan (overlap, orphan, spike, sod), one open flag per
 * (customer, kind, subject); and when each environment was last scanned, so the scheduler scans
 * each one once a day.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('anomaly_flags')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('detail', 'jsonb', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('raised_at', 'timestamptz', (c) => c.notNull())
    .addColumn('closed_at', 'timestamptz')
    .addColumn('closed_by', 'text')
    .addColumn('comment', 'text')
    .execute();
  // A re-run of the scan never opens a second flag for the same finding.
  await sql`CREATE UNIQUE INDEX anomaly_flags_open ON anomaly_flags (environment, customer_id, kind, subject) WHERE status = 'open'`.execute(
    db,
  );
  await sql`CREATE INDEX anomaly_flags_list ON anomaly_flags (environment, status, id)`.execute(db);
  await db.schema
    .createTable('anomaly_scans')
    .addColumn('environment', 'text', (c) => c.primaryKey().references('environments.id'))
    .addColumn('scanned_at', 'timestamptz', (c) => c.notNull())
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('anomaly_scans').execute();
  await db.schema.dropTable('anomaly_flags').execute();
}
