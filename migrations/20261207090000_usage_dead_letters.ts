import { type Kysely, sql } from 'kysely';

/**
 * Usage records the flusher could not write to the ledger (PostgreSQL refused the row, or its
 * environment and customer are not in this database), set aside so they hold back no other event.
 * One row per event of a stream entry: (stream, entry_id, position) is unique, so an entry settled
 * again after a crash adds nothing. `record` is the stream record as a JSON string (text cannot
 * hold a NUL byte, one of the reasons a record is refused).
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('usage_dead_letters')
    .addColumn('id', 'bigint', (c) => c.generatedAlwaysAsIdentity().primaryKey())
    .addColumn('stream', 'text', (c) => c.notNull())
    .addColumn('entry_id', 'text', (c) => c.notNull())
    .addColumn('position', 'integer', (c) => c.notNull())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('record', 'text', (c) => c.notNull())
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('detail', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('usage_dead_letters_entry', ['stream', 'entry_id', 'position'])
    .execute();
  await db.schema
    .createIndex('usage_dead_letters_environment')
    .on('usage_dead_letters')
    .columns(['environment', 'id'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('usage_dead_letters').ifExists().execute();
}
