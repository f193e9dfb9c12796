/**
 * Seeding many customers fast. The catalog (load/check-bench.ts's six features over free, pro and
 * enterprise) and twenty template customers go through the public API, so their rows are exactly
 * what Tessera writes; the rest are copies of the templates made by PostgreSQL itself
 * (`INSERT ... SELECT ... FROM generate_series`), customer i copying template i % 20 with its id,
 * name and region rewritten. The copy is generic over the columns (read from the catalog), so a
 * column added by a later migration is copied too.
 *
 * Mix of the templates (so of all customers): 60% free, 30% pro, 10% enterprise; overrides on 10%
 * (a free customer given SSO, a pro customer given a higher API limit); credit grants on 5% (API
 * calls for a free customer). Audit events and outbox rows are written for the templates only:
 * the copies stand for customers created long before the run.
 */
import pg from 'pg';
import { seedCatalog } from '../check-bench.ts';
import { api, pool } from '../lib.ts';

export const TEMPLATES = 20;

export function planOf(i: number): 'free' | 'pro' | 'enterprise' {
  const t = i % TEMPLATES;
  return t < 12 ? 'free' : t < 18 ? 'pro' : 'enterprise';
}

export const customerId = (i: number) => `cust-${i}`;

async function seedTemplates(port: number): Promise<void> {
  await pool(
    Array.from({ length: TEMPLATES }, (_, i) => i),
    4,
    async (i) => {
      const id = customerId(i);
      await api(port, 'PUT', `/v1/customers/${id}`, {
        name: `Customer ${i}`,
        attributes: { region: i % 2 ? 'eu' : 'us' },
      });
      await api(port, 'POST', `/v1/customers/${id}/subscriptions`, { plan: planOf(i) });
      if (i === 3)
        await api(port, 'POST', `/v1/customers/${id}/overrides`, {
          feature: 'sso',
          enabled: true,
          reason: 'sales exception',
        });
      if (i === 13)
        await api(port, 'POST', `/v1/customers/${id}/overrides`, {
          feature: 'api_calls',
          limit: 500_000,
          reason: 'negotiated limit',
        });
      if (i === 7)
        await api(port, 'POST', `/v1/customers/${id}/grants`, {
          feature: 'api_calls',
          amount: 5000,
          reason: 'onboarding credits',
        });
    },
  );
}

/** Tables holding customers' own rows that copies need: every table with a `customer_id` but these. */
const NOT_COPIED = new Set([
  'audit_events',
  'outbox',
  'idempotency_keys',
  'usage_events',
  'usage_dead_letters',
]);

/** The SELECT list copying `table`'s row of template `src` for customer number `g.i`. */
function copyColumns(table: string, columns: ReadonlyArray<{ name: string; type: string }>): string {
  return columns
    .map(({ name, type }) => {
      if (name === 'customer_id') return `'cust-' || g.i`;
      // Sortable ids keep their prefix and time; the last 8 characters become the copy's number.
      if (name === 'id' && type === 'text')
        return `substr(src.id, 1, length(src.id) - 8) || lpad(g.i::text, 8, '0')`;
      if (table === 'customers' && name === 'name') return `'Customer ' || g.i`;
      if (table === 'customers' && name === 'attributes')
        return `jsonb_set(src.attributes, '{region}', to_jsonb(CASE WHEN g.i % 2 = 1 THEN 'eu' ELSE 'us' END))`;
      return `src.${pg.escapeIdentifier(name)}`;
    })
    .join(', ');
}

/** Copies the templates' rows for customers TEMPLATES..count-1; resolves with rows written per table. */
async function copyTemplates(databaseUrl: string, count: number): Promise<Record<string, number>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ table_name: string; column_name: string; data_type: string }>(
      `SELECT table_name, column_name, data_type FROM information_schema.columns
        WHERE table_schema = 'public' AND is_generated = 'NEVER' AND is_identity = 'NO'
          AND table_name IN (SELECT table_name FROM information_schema.columns
                              WHERE table_schema = 'public' AND column_name = 'customer_id')
        ORDER BY table_name, ordinal_position`,
    );
    const tables = new Map<string, Array<{ name: string; type: string }>>();
    for (const r of rows) {
      if (NOT_COPIED.has(r.table_name)) continue;
      const list = tables.get(r.table_name) ?? [];
      list.push({ name: r.column_name, type: r.data_type });
      tables.set(r.table_name, list);
    }
    // Customers first (the others refer to them); then any table the templates have rows in.
    const order = ['customers', ...[...tables.keys()].filter((t) => t !== 'customers').sort()];
    const written: Record<string, number> = {};
    await client.query('BEGIN');
    for (const table of order) {
      const columns = tables.get(table);
      if (!columns) continue;
      const t = pg.escapeIdentifier(table);
      const result = await client.query(
        `INSERT INTO ${t} (${columns.map((c) => pg.escapeIdentifier(c.name)).join(', ')})
         SELECT ${copyColumns(table, columns)}
           FROM generate_series($1::int, $2::int) AS g(i)
           JOIN ${t} AS src ON src.customer_id = 'cust-' || (g.i % ${TEMPLATES})`,
        [TEMPLATES, count - 1],
      );
      if (result.rowCount) written[table] = result.rowCount;
    }
    await client.query('COMMIT');
    return written;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    await client.end();
  }
}

/** Seeds the catalog and `count` customers into the database `port`'s server runs on. */
export async function seedCustomers(port: number, databaseUrl: string, count: number): Promise<string> {
  await seedCatalog(port);
  await seedTemplates(port);
  const written = await copyTemplates(databaseUrl, count);
  return Object.entries(written)
    .map(([table, n]) => `${table} ${n}`)
    .join(', ');
}

export interface Subscriptions {
  /** Base subscription id of customer i. */
  ids: string[];
  /** Its plan now (kept up to date by the plan changes the run sends). */
  plans: string[];
}

/** Every customer's live base subscription, by customer number. */
export async function baseSubscriptions(databaseUrl: string, count: number): Promise<Subscriptions> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ customer_id: string; id: string; plan_key: string }>(
      `SELECT customer_id, id, plan_key FROM subscriptions
        WHERE environment = 'test' AND addon = false AND status NOT IN ('canceled', 'expired')`,
    );
    const ids = new Array<string>(count);
    const plans = new Array<string>(count);
    for (const r of rows) {
      const i = Number(r.customer_id.slice(5));
      if (i < count) {
        ids[i] = r.id;
        plans[i] = r.plan_key;
      }
    }
    return { ids, plans };
  } finally {
    await client.end();
  }
}
