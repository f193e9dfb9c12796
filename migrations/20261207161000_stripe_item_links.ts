import { type Kysely, sql } from 'kysely';

/**
 * Every Tessera subscription made from a Stripe subscription item carries its Stripe subscription
 * and item (add-ons too, not only the base plan), so a Tessera-led change updates exactly that
 * item. Several Tessera subscriptions now share one Stripe subscription: the uniqueness moves to
 * the item, among live subscriptions (an ended one keeps its link as history). Add-ons linked
 * before are filled in from stripe_subscription_links (their slot is their item id); a base plan's
 * item is filled in by the next event of its subscription.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX IF EXISTS subscriptions_stripe`.execute(db);
  await sql`CREATE INDEX subscriptions_stripe_subscription ON subscriptions (environment, stripe_subscription_id)
            WHERE stripe_subscription_id IS NOT NULL`.execute(db);
  await sql`UPDATE subscriptions s
            SET stripe_subscription_id = l.stripe_subscription_id, stripe_item_id = l.slot
            FROM stripe_subscription_links l
            WHERE l.environment = s.environment AND l.subscription_id = s.id AND l.slot <> 'base'`.execute(
    db,
  );
  await sql`CREATE UNIQUE INDEX subscriptions_stripe_item ON subscriptions (environment, stripe_item_id)
            WHERE stripe_item_id IS NOT NULL AND status NOT IN ('canceled', 'expired')`.execute(db);
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX IF EXISTS subscriptions_stripe_item`.execute(db);
  await sql`DROP INDEX IF EXISTS subscriptions_stripe_subscription`.execute(db);
  // Back to one Tessera subscription per Stripe subscription: only the newest base plan keeps it.
  await sql`UPDATE subscriptions SET stripe_subscription_id = NULL WHERE addon = true`.execute(db);
  await sql`UPDATE subscriptions s SET stripe_subscription_id = NULL
            WHERE s.stripe_subscription_id IS NOT NULL AND EXISTS (
              SELECT 1 FROM subscriptions n
              WHERE n.environment = s.environment AND n.stripe_subscription_id = s.stripe_subscription_id
                AND n.id > s.id)`.execute(db);
  await sql`CREATE UNIQUE INDEX subscriptions_stripe ON subscriptions (environment, stripe_subscription_id)
            WHERE stripe_subscription_id IS NOT NULL`.execute(db);
}
