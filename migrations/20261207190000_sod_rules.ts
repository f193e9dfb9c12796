import { type Kysely, sql } from 'kysely';

/**
 * Separation-of-duties rules per environment. A rule of the first form names features a customer
 * may not hold two of at once (`features`, `action`); a rule of the second form names an
 * incompatible duty (`duty`, `min_amount`). Deleting a rule sets `deleted_at`: its id stays
 * resolvable for the audit log and for flags that name it.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('sod_rules')
    .addColumn('id', 'text', (c) => c.primaryKey())
    // Creation order, exact even for rules made in the same millisecond.
    .addColumn('seq', 'bigserial', (c) => c.notNull())
    .addColumn('environment', 'text', (c) => c.notNull().references('environments.id'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('features', 'jsonb')
    .addColumn('action', 'text')
    .addColumn('duty', 'text')
    .addColumn('min_amount', 'double precision')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull())
    .addColumn('deleted_at', 'timestamptz')
    .addCheckConstraint(
      'sod_rules_form',
      sql`(features IS NOT NULL AND action IS NOT NULL AND duty IS NULL) OR (features IS NULL AND action IS NULL AND duty IS NOT NULL)`,
    )
    .execute();
  await sql`CREATE INDEX sod_rules_live ON sod_rules (environment, seq) WHERE deleted_at IS NULL`.execute(db);
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('sod_rules').execute();
}
