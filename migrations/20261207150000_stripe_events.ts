import { type Kysely, sql } from 'kysely';

/**
 * The Stripe event store: every verified webhook event, once per environment and Stripe event id,
 * with its processing state. `next_attempt_at` is when a waiting event may be tried (again), and
 * while it is `processing`, when its claim lapses (a worker that died mid-way).
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('stripe_events')
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('id', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('api_version', 'text')
    .addColumn('created', 'bigint', (c) => c.notNull())
    .addColumn('livemode', 'boolean', (c) => c.notNull())
    .addColumn('object_type', 'text')
    .addColumn('object_id', 'text')
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status IN ('received', 'processing', 'applied', 'ignored', 'failed')`),
    )
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_error', 'text')
    .addColumn('detail', 'text')
    .addColumn('received_at', 'timestamptz', (c) => c.notNull())
    .addColumn('next_attempt_at', 'timestamptz', (c) => c.notNull())
    .addColumn('processed_at', 'timestamptz')
    .addPrimaryKeyConstraint('stripe_events_pkey', ['environment', 'id'])
    .execute();
  // The worker's pick: waiting events that are due.
  await sql`CREATE INDEX stripe_events_due ON stripe_events (next_attempt_at)
            WHERE status IN ('received', 'processing')`.execute(db);
  // The admin list, newest first, filtered by status.
  await db.schema
    .createIndex('stripe_events_by_status')
    .on('stripe_events')
    .columns(['environment', 'status', 'received_at', 'id'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('stripe_events').execute();
}
