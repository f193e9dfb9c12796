import { type Kysely, sql } from 'kysely';

/**
 * Ed25519 keys that sign entitlement tokens, per environment. The private half is sealed
 * (AES-256-GCM under a key derived from TESSERA_SECRET_KEY); the public half is served in the JWKS
 * until every token the key signed has expired (`expires_from_jwks_at`).
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('signing_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('public_jwk', 'jsonb', (c) => c.notNull())
    .addColumn('private_key', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('retired_at', 'timestamptz')
    .addColumn('expires_from_jwks_at', 'timestamptz')
    .execute();
  // One active key per environment: two first uses racing cannot both create one.
  await sql`CREATE UNIQUE INDEX signing_keys_active ON signing_keys (environment) WHERE retired_at IS NULL`.execute(
    db,
  );
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('signing_keys').execute();
}
