import { type Kysely, sql } from 'kysely';

/**
 * Metering: the durable usage ledger (the source of truth for every counter), the Postgres-mode
 * counters, credit draws and distinct members, remembered refusals, threshold crossings (one row
 * per period and threshold, so each is announced once), reservations, and a marker that tells
 * whether Redis still holds the counters built from this ledger.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('usage_events')
    .addColumn('id', 'bigint', (c) => c.generatedAlwaysAsIdentity().primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('feature', 'text', (c) => c.notNull())
    .addColumn('idempotency_key', 'text', (c) => c.notNull())
    .addColumn('value', 'numeric', (c) => c.notNull())
    .addColumn('counted', 'numeric', (c) => c.notNull())
    .addColumn('member', 'text')
    .addColumn('occurred_at', 'timestamptz', (c) => c.notNull())
    .addColumn('period_start', 'timestamptz', (c) => c.notNull())
    .addColumn('period_end', 'timestamptz')
    .addColumn('overage', 'numeric', (c) => c.notNull().defaultTo(0))
    .addColumn('credit', 'numeric', (c) => c.notNull().defaultTo(0))
    .addColumn('credit_draws', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('answer', 'jsonb', (c) => c.notNull())
    .addColumn('reservation_id', 'text')
    .addColumn('recorded_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('usage_events_idempotency', ['environment', 'customer_id', 'idempotency_key'])
    .execute();
  await db.schema
    .createIndex('usage_events_counter')
    .on('usage_events')
    .columns(['environment', 'customer_id', 'feature', 'period_start'])
    .execute();
  await db.schema.createIndex('usage_events_recorded').on('usage_events').column('recorded_at').execute();

  await db.schema
    .createTable('usage_counters')
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('feature', 'text', (c) => c.notNull())
    .addColumn('period_start', 'timestamptz', (c) => c.notNull())
    .addColumn('period_end', 'timestamptz')
    .addColumn('used', 'numeric', (c) => c.notNull().defaultTo(0))
    .addColumn('overage', 'numeric', (c) => c.notNull().defaultTo(0))
    .addColumn('credit_used', 'numeric', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('usage_counters_pk', ['environment', 'customer_id', 'feature', 'period_start'])
    .execute();

  await db.schema
    .createTable('usage_credit')
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('feature', 'text', (c) => c.notNull())
    .addColumn('grant_id', 'text', (c) => c.notNull())
    .addColumn('used', 'numeric', (c) => c.notNull().defaultTo(0))
    .addPrimaryKeyConstraint('usage_credit_pk', ['environment', 'customer_id', 'feature', 'grant_id'])
    .execute();

  await db.schema
    .createTable('usage_members')
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('feature', 'text', (c) => c.notNull())
    .addColumn('period_start', 'timestamptz', (c) => c.notNull())
    .addColumn('member', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('usage_members_pk', [
      'environment',
      'customer_id',
      'feature',
      'period_start',
      'member',
    ])
    .execute();

  await db.schema
    .createTable('usage_refusals')
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('idempotency_key', 'text', (c) => c.notNull())
    .addColumn('answer', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('usage_refusals_pk', ['environment', 'customer_id', 'idempotency_key'])
    .execute();

  await db.schema
    .createTable('usage_thresholds')
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('feature', 'text', (c) => c.notNull())
    .addColumn('period_start', 'timestamptz', (c) => c.notNull())
    .addColumn('threshold', 'integer', (c) => c.notNull())
    .addColumn('used', 'numeric', (c) => c.notNull())
    .addColumn('limit', 'numeric', (c) => c.notNull())
    .addColumn('reached_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('usage_thresholds_pk', [
      'environment',
      'customer_id',
      'feature',
      'period_start',
      'threshold',
    ])
    .execute();

  await db.schema
    .createTable('reservations')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('feature', 'text', (c) => c.notNull())
    .addColumn('amount', 'numeric', (c) => c.notNull())
    .addColumn('committed_amount', 'numeric')
    .addColumn('period_start', 'timestamptz', (c) => c.notNull())
    .addColumn('period_end', 'timestamptz')
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('settled_at', 'timestamptz')
    .execute();
  await sql`CREATE INDEX reservations_held ON reservations (environment, customer_id, feature, period_start)
            WHERE status = 'held'`.execute(db);
  await sql`CREATE INDEX reservations_due ON reservations (expires_at) WHERE status = 'held'`.execute(db);

  await db.schema
    .createTable('metering_state')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'metering_state',
    'reservations',
    'usage_thresholds',
    'usage_refusals',
    'usage_members',
    'usage_credit',
    'usage_counters',
    'usage_events',
  ]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
