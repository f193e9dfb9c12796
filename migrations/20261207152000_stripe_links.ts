import { type Kysely, sql } from 'kysely';

/**
 * Links to Stripe for pushing Tessera-led changes and reporting usage: a subscription's Stripe
 * subscription item (its subscription id column exists since the holdings migration), a metered
 * feature's Stripe meter, and how far each environment's usage has been reported to Stripe.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await sql`ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS stripe_subscription_id text`.execute(db);
  await sql`ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS stripe_item_id text`.execute(db);
  await db.schema.alterTable('features').addColumn('stripe_meter', 'jsonb').execute();
  await db.schema
    .createTable('stripe_usage_reports')
    .addColumn('environment', 'text', (c) => c.primaryKey().references('environments.id'))
    .addColumn('last_event_id', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('stripe_usage_reports').execute();
  await db.schema.alterTable('features').dropColumn('stripe_meter').execute();
  await db.schema.alterTable('subscriptions').dropColumn('stripe_item_id').execute();
}
