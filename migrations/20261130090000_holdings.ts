import { type Kysely, sql } from 'kysely';

/**
 * What customers hold: subscriptions (base plan and add-ons), overrides (time-boxed exceptions)
 * and credit grants; plus the record of time-driven subscription transitions the scheduler has
 * persisted (its idempotency keys). History is never rewritten: rows end, they are not deleted.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('subscriptions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('plan_key', 'text', (c) => c.notNull())
    .addColumn('plan_version', 'integer', (c) => c.notNull())
    .addColumn('addon', 'boolean', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('quantity', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('started_at', 'timestamptz', (c) => c.notNull())
    .addColumn('billing_anchor', 'timestamptz', (c) => c.notNull())
    .addColumn('trial_ends_at', 'timestamptz')
    .addColumn('trial_on_end', 'text')
    .addColumn('trial_downgrade_to', 'text')
    .addColumn('current_period_start', 'timestamptz', (c) => c.notNull())
    .addColumn('current_period_end', 'timestamptz', (c) => c.notNull())
    .addColumn('cancel_at_period_end', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('scheduled_change', 'jsonb')
    .addColumn('past_due_since', 'timestamptz')
    .addColumn('paused_at', 'timestamptz')
    .addColumn('ended_at', 'timestamptz')
    .addColumn('stripe_subscription_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addForeignKeyConstraint('subscriptions_customer', ['environment', 'customer_id'], 'customers', [
      'environment',
      'customer_id',
    ])
    .execute();
  await db.schema
    .createIndex('subscriptions_customer_idx')
    .on('subscriptions')
    .columns(['environment', 'customer_id'])
    .execute();
  await db.schema
    .createIndex('subscriptions_plan_idx')
    .on('subscriptions')
    .columns(['environment', 'plan_key', 'plan_version'])
    .execute();
  // One live base plan per customer; any number of add-ons.
  await sql`CREATE UNIQUE INDEX subscriptions_one_base ON subscriptions (environment, customer_id)
            WHERE addon = false AND status NOT IN ('canceled', 'expired')`.execute(db);
  await sql`CREATE UNIQUE INDEX subscriptions_stripe ON subscriptions (environment, stripe_subscription_id)
            WHERE stripe_subscription_id IS NOT NULL`.execute(db);
  // The scheduler scans live subscriptions by their next time-driven boundary.
  await sql`CREATE INDEX subscriptions_live ON subscriptions (current_period_end)
            WHERE status NOT IN ('canceled', 'expired')`.execute(db);

  await db.schema
    .createTable('subscription_transitions')
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('subscription_id', 'text', (c) => c.notNull().references('subscriptions.id'))
    .addColumn('event', 'text', (c) => c.notNull())
    .addColumn('due_at', 'timestamptz', (c) => c.notNull())
    .addColumn('applied_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('subscription_transitions_pk', ['environment', 'key'])
    .execute();

  await db.schema
    .createTable('overrides')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('feature', 'text', (c) => c.notNull())
    .addColumn('effect', 'jsonb', (c) => c.notNull())
    .addColumn('condition', 'text')
    .addColumn('starts_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz')
    .addColumn('ended_at', 'timestamptz')
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('created_by', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addForeignKeyConstraint('overrides_customer', ['environment', 'customer_id'], 'customers', [
      'environment',
      'customer_id',
    ])
    .execute();
  await db.schema
    .createIndex('overrides_customer_idx')
    .on('overrides')
    .columns(['environment', 'customer_id'])
    .execute();

  await db.schema
    .createTable('credit_grants')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('feature', 'text', (c) => c.notNull())
    .addColumn('amount', 'numeric', (c) => c.notNull())
    .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('effective_at', 'timestamptz', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz')
    .addColumn('voided_at', 'timestamptz')
    .addColumn('reason', 'text', (c) => c.notNull())
    .addColumn('created_by', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addForeignKeyConstraint('credit_grants_customer', ['environment', 'customer_id'], 'customers', [
      'environment',
      'customer_id',
    ])
    .execute();
  await db.schema
    .createIndex('credit_grants_customer_idx')
    .on('credit_grants')
    .columns(['environment', 'customer_id', 'feature'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ['credit_grants', 'overrides', 'subscription_transitions', 'subscriptions']) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
