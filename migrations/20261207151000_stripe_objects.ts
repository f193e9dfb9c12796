import { type Kysely, sql } from 'kysely';

/**
 * What Tessera last applied of each Stripe object (a per-object high-water mark, so an older event
 * never rolls state back), and which Tessera subscription stands for which item of a Stripe
 * subscription (one per item: the base plan, and each add-on).
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('stripe_objects')
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('object_type', 'text', (c) => c.notNull())
    .addColumn('object_id', 'text', (c) => c.notNull())
    .addColumn('last_event_created', 'bigint', (c) => c.notNull())
    .addColumn('last_event_id', 'text', (c) => c.notNull())
    .addColumn('state_hash', 'text', (c) => c.notNull())
    /** The applied state, reduced to what Tessera reads (a subscription snapshot, an invoice's payment). */
    .addColumn('state', 'jsonb', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('stripe_objects_pkey', ['environment', 'object_type', 'object_id'])
    .execute();
  await sql`CREATE INDEX stripe_objects_invoice_subscription ON stripe_objects (environment, (state->>'subscription'))
            WHERE object_type = 'invoice'`.execute(db);
  await db.schema
    .createTable('stripe_subscription_links')
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('stripe_subscription_id', 'text', (c) => c.notNull())
    /** `base` for the base plan's item, the item id (`si_…`) for an add-on. */
    .addColumn('slot', 'text', (c) => c.notNull())
    .addColumn('subscription_id', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('stripe_subscription_links_pkey', [
      'environment',
      'stripe_subscription_id',
      'slot',
    ])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('stripe_subscription_links').execute();
  await db.schema.dropTable('stripe_objects').execute();
}
