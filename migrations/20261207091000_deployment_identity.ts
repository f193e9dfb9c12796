import { type Kysely, sql } from 'kysely';

/**
 * The deployment's identity: one row, its random id written at the first start-up (not here, so
 * databases cloned from a migrated template each get their own). Tessera marks its Redis namespace
 * with it and refuses to start on a namespace another database marked.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('deployment_identity')
    .addColumn('singleton', 'boolean', (c) => c.primaryKey().defaultTo(true).check(sql`singleton`))
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('deployment_identity').execute();
}
