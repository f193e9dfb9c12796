import type { Kysely } from 'kysely';

/**
 * Each environment's connection to Stripe: its secret key and webhook signing secret, stored
 * encrypted (AES-256-GCM under a key derived from TESSERA_SECRET_KEY, never kept in the database),
 * and which side leads the subscription lifecycle.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('stripe_settings')
    .addColumn('environment', 'text', (c) => c.primaryKey().references('environments.id'))
    .addColumn('secret_key', 'text')
    .addColumn('secret_key_hint', 'text')
    .addColumn('webhook_secret', 'text')
    .addColumn('lifecycle_owner', 'text', (c) => c.notNull().defaultTo('stripe'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('stripe_settings').execute();
}
