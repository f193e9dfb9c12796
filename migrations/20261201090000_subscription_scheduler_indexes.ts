import { type Kysely, sql } from 'kysely';

/**
 * Indexes for the subscription scheduler: past_due subscriptions by when their grace started, and
 * the recorded transitions of one subscription (to tell whether its grace end is already recorded).
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE INDEX subscriptions_past_due ON subscriptions (past_due_since)
            WHERE status = 'past_due'`.execute(db);
  await db.schema
    .createIndex('subscription_transitions_subscription_idx')
    .on('subscription_transitions')
    .columns(['subscription_id', 'event', 'due_at'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('subscription_transitions_subscription_idx').ifExists().execute();
  await db.schema.dropIndex('subscriptions_past_due').ifExists().execute();
}
