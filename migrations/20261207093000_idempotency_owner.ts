import type { Kysely } from 'kysely';

/**
 * An idempotency record belongs to the API key that made it: another key (a `check` key repeating
 * an admin's request, or the reverse) never sees or blocks it. The records kept until now have no
 * owner and may have stored secrets in their answers; they are only a retry aid, so they are
 * dropped rather than guessed at.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.deleteFrom('idempotency_keys').execute();
  await db.schema.alterTable('idempotency_keys').dropConstraint('idempotency_keys_pk').execute();
  await db.schema
    .alterTable('idempotency_keys')
    .addColumn('api_key_id', 'text', (c) => c.notNull())
    .execute();
  await db.schema
    .alterTable('idempotency_keys')
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['environment', 'api_key_id', 'key'])
    .execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.deleteFrom('idempotency_keys').execute();
  await db.schema.alterTable('idempotency_keys').dropConstraint('idempotency_keys_pk').execute();
  await db.schema.alterTable('idempotency_keys').dropColumn('api_key_id').execute();
  await db.schema
    .alterTable('idempotency_keys')
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['environment', 'key'])
    .execute();
}
