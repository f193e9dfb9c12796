import { type Kysely, sql } from 'kysely';

/**
 * Runs of the Stripe reconciliation: when each ran, whether it was a dry run, how it ended, and its
 * drift report (what differed between Stripe and Tessera, and what was changed).
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('stripe_reconciliations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('finished_at', 'timestamptz')
    .addColumn('dry_run', 'boolean', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull().check(sql`status IN ('running', 'succeeded', 'failed')`))
    .addColumn('report', 'jsonb', (c) => c.notNull())
    .addColumn('error', 'text')
    .execute();
  await db.schema
    .createIndex('stripe_reconciliations_environment_started')
    .on('stripe_reconciliations')
    .columns(['environment', 'started_at', 'id'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('stripe_reconciliations').execute();
}
