import { type Kysely, sql } from 'kysely';

/**
 * Foundation: environments, API keys, idempotency records, the hash-chained audit log, the outbox,
 * and the catalog (features, plans, plan versions) and customers.
 * Every business table is keyed by environment first: environments are walls.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('environments')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('settings', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await sql`INSERT INTO environments (id, name) VALUES ('test', 'Test'), ('live', 'Live')`.execute(db);

  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('scopes', 'jsonb', (c) => c.notNull())
    .addColumn('prefix', 'text', (c) => c.notNull())
    .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('revoked_at', 'timestamptz')
    .execute();
  await db.schema.createIndex('api_keys_environment').on('api_keys').columns(['environment', 'id']).execute();

  await db.schema
    .createTable('idempotency_keys')
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('method', 'text', (c) => c.notNull())
    .addColumn('path', 'text', (c) => c.notNull())
    .addColumn('request_hash', 'text', (c) => c.notNull())
    .addColumn('status_code', 'integer')
    .addColumn('response_body', 'text')
    .addColumn('response_content_type', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['environment', 'key'])
    .execute();
  await db.schema
    .createIndex('idempotency_keys_expiry')
    .on('idempotency_keys')
    .column('expires_at')
    .execute();

  await db.schema
    .createTable('audit_heads')
    .addColumn('environment', 'text', (c) => c.primaryKey().references('environments.id'))
    .addColumn('last_index', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('last_hash', 'text', (c) => c.notNull())
    .execute();
  await sql`INSERT INTO audit_heads (environment, last_index, last_hash)
            SELECT id, 0, repeat('0', 64) FROM environments`.execute(db);

  await db.schema
    .createTable('audit_events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('chain_index', 'bigint', (c) => c.notNull())
    .addColumn('actor', 'jsonb', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('target', 'jsonb', (c) => c.notNull())
    .addColumn('customer_id', 'text')
    .addColumn('before', 'jsonb')
    .addColumn('after', 'jsonb')
    .addColumn('request_id', 'text')
    .addColumn('at', 'timestamptz', (c) => c.notNull())
    .addColumn('prev_hash', 'text', (c) => c.notNull())
    .addColumn('hash', 'text', (c) => c.notNull())
    .addUniqueConstraint('audit_events_chain', ['environment', 'chain_index'])
    .execute();
  await db.schema
    .createIndex('audit_events_customer')
    .on('audit_events')
    .columns(['environment', 'customer_id', 'chain_index'])
    .execute();
  await db.schema
    .createIndex('audit_events_action')
    .on('audit_events')
    .columns(['environment', 'action', 'chain_index'])
    .execute();

  await db.schema
    .createTable('outbox')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('customer_id', 'text')
    .addColumn('topic', 'text', (c) => c.notNull())
    .addColumn('payload', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('dispatched_at', 'timestamptz')
    .addColumn('last_error', 'text')
    .execute();
  await sql`CREATE INDEX outbox_pending ON outbox (id) WHERE dispatched_at IS NULL`.execute(db);

  await db.schema
    .createTable('features')
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('id', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('unit', 'text')
    .addColumn('description', 'text')
    .addColumn('aggregation', 'text', (c) => c.notNull().defaultTo('sum'))
    .addColumn('archived_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('features_pk', ['environment', 'key'])
    .execute();

  await db.schema
    .createTable('plans')
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('id', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('addon', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('latest_version', 'integer', (c) => c.notNull())
    .addColumn('archived_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('plans_pk', ['environment', 'key'])
    .execute();

  await db.schema
    .createTable('plan_versions')
    .addColumn('environment', 'text', (c) => c.notNull())
    .addColumn('plan_key', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('entitlements', 'jsonb', (c) => c.notNull())
    .addColumn('trial', 'jsonb')
    .addColumn('stripe', 'jsonb')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('plan_versions_pk', ['environment', 'plan_key', 'version'])
    .addForeignKeyConstraint('plan_versions_plan', ['environment', 'plan_key'], 'plans', [
      'environment',
      'key',
    ])
    .execute();

  await db.schema
    .createTable('customers')
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('name', 'text')
    .addColumn('email', 'text')
    .addColumn('attributes', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('stripe_customer_id', 'text')
    .addColumn('version', 'bigint', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('deleted_at', 'timestamptz')
    .addPrimaryKeyConstraint('customers_pk', ['environment', 'customer_id'])
    .execute();
  await sql`CREATE UNIQUE INDEX customers_stripe ON customers (environment, stripe_customer_id)
            WHERE stripe_customer_id IS NOT NULL`.execute(db);
  await db.schema
    .createIndex('customers_created')
    .on('customers')
    .columns(['environment', 'created_at'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  for (const table of [
    'customers',
    'plan_versions',
    'plans',
    'features',
    'outbox',
    'audit_events',
    'audit_heads',
    'idempotency_keys',
    'api_keys',
    'environments',
  ]) {
    await db.schema.dropTable(table).ifExists().execute();
  }
}
