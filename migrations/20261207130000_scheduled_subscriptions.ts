import { type Kysely, sql } from 'kysely';

/**
 * Subscriptions that start in the future are stored `scheduled` until their start, when a
 * time-driven `start` transition makes them `trialing` or `active`. Rows created before this status
 * existed were stored with the status they would have at their start: they become `scheduled`
 * while their start is still to come. An index lets the scheduler find the starts that are due.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await sql`UPDATE subscriptions SET status = 'scheduled'
             WHERE started_at > now() AND status IN ('trialing', 'active')`.execute(db);
  await sql`CREATE INDEX subscriptions_scheduled ON subscriptions (started_at)
            WHERE status = 'scheduled'`.execute(db);
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex('subscriptions_scheduled').ifExists().execute();
  await sql`UPDATE subscriptions SET status = CASE WHEN trial_ends_at IS NULL THEN 'active' ELSE 'trialing' END
             WHERE status = 'scheduled'`.execute(db);
}
