import type { Kysely } from 'kysely';

/**
 * Per-key rate limits: requests per second for one API key on one node. NULL follows
 * TESSERA_RATE_LIMIT_DEFAULT; 0 is unlimited.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('api_keys').addColumn('rate_limit_per_second', 'integer').execute();
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('api_keys').dropColumn('rate_limit_per_second').execute();
}
