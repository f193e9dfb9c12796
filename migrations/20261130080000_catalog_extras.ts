import { type Kysely, sql } from 'kysely';

/** Lets `GET /v1/customers?email=` (case-insensitive) use an index instead of scanning. */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await sql`CREATE INDEX customers_email ON customers (environment, lower(email))`.execute(db);
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP INDEX IF EXISTS customers_email`.execute(db);
}
