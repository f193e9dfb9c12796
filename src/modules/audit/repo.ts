import { type Selectable, sql } from 'kysely';
import {
  type Actor,
  type AuditEvent,
  type ChainedFields,
  chainHash,
  GENESIS_HASH,
} from '../../platform/audit-chain.ts';
import type { Executor } from '../../platform/db.ts';
import type { AuditEventsTable } from '../../platform/db-types.ts';

export interface AuditFilter {
  customerId?: string;
  actor?: string;
  action?: string;
  since?: Date;
  until?: Date;
  afterIndex?: number;
}

type Row = Selectable<AuditEventsTable>;

function baseQuery(db: Executor, environment: string, filter: AuditFilter) {
  let q = db.selectFrom('audit_events').selectAll().where('environment', '=', environment);
  if (filter.customerId !== undefined) q = q.where('customer_id', '=', filter.customerId);
  if (filter.action !== undefined) {
    // "customer.*" style prefixes are the common way to ask for a family of actions.
    q = filter.action.endsWith('*')
      ? q.where('action', 'like', `${filter.action.slice(0, -1).replace(/[%_\\]/g, '\\$&')}%`)
      : q.where('action', '=', filter.action);
  }
  if (filter.actor !== undefined) {
    const actor = filter.actor;
    q = q.where((eb) =>
      eb.or([
        eb(sql`actor->>'id'`, '=', actor),
        eb(sql`actor->>'type'`, '=', actor),
        eb(sql`actor->>'name'`, '=', actor),
        eb(sql`actor->>'person'`, '=', actor),
      ]),
    );
  }
  if (filter.since) q = q.where('at', '>=', filter.since);
  if (filter.until) q = q.where('at', '<', filter.until);
  if (filter.afterIndex !== undefined) q = q.where('chain_index', '>', filter.afterIndex);
  return q.orderBy('chain_index', 'asc');
}

export function toAuditEvent(row: Row): AuditEvent {
  return {
    id: row.id,
    environment: row.environment,
    chain_index: row.chain_index,
    actor: row.actor as Actor,
    action: row.action,
    target: row.target,
    customer_id: row.customer_id,
    before: row.before,
    after: row.after,
    request_id: row.request_id,
    at: row.at.toISOString(),
    prev_hash: row.prev_hash,
    hash: row.hash,
  };
}

export async function listAuditEvents(
  db: Executor,
  environment: string,
  filter: AuditFilter,
  limit: number,
): Promise<AuditEvent[]> {
  const rows = await baseQuery(db, environment, filter).limit(limit).execute();
  return rows.map(toAuditEvent);
}

export interface VerifyResult {
  ok: boolean;
  checked: number;
  first_broken_id?: string;
}

export interface ChainWalk extends VerifyResult {
  /** The stored id and hash at each watched position that the chain still has. */
  seen: Map<number, { id: string; hash: string }>;
}

/**
 * Recomputes the chain from the start; the first event whose link or hash does not hold is reported.
 * The walk goes on to the end either way, to note the stored event at each `watch`ed position
 * (checkpoints compare against what is stored, not against what a broken chain should have held).
 */
export async function verifyAuditChain(
  db: Executor,
  environment: string,
  options: { watch?: ReadonlySet<number>; batch?: number } = {},
): Promise<ChainWalk> {
  const batch = options.batch ?? 1000;
  const watch = options.watch ?? new Set<number>();
  const seen = new Map<number, { id: string; hash: string }>();
  let prevHash = GENESIS_HASH;
  let expectedIndex = 1;
  let checked = 0;
  let lastId: string | undefined;
  let broken: string | undefined;
  let afterIndex = 0;
  for (;;) {
    const rows = await baseQuery(db, environment, { afterIndex }).limit(batch).execute();
    for (const row of rows) {
      afterIndex = row.chain_index;
      if (watch.has(row.chain_index)) seen.set(row.chain_index, { id: row.id, hash: row.hash });
      if (broken !== undefined) continue;
      const event = toAuditEvent(row);
      const { hash, ...fields } = event;
      const linkOk = row.chain_index === expectedIndex && event.prev_hash === prevHash;
      if (!linkOk || chainHash(fields as ChainedFields) !== hash) {
        broken = event.id;
        continue;
      }
      prevHash = hash;
      expectedIndex += 1;
      checked += 1;
      lastId = event.id;
    }
    if (rows.length < batch) break;
  }
  if (broken !== undefined) return { ok: false, checked, first_broken_id: broken, seen };
  const head = await db
    .selectFrom('audit_heads')
    .select(['last_index', 'last_hash'])
    .where('environment', '=', environment)
    .executeTakeFirst();
  // Rows cut from the end of the chain leave the head pointing past the last event.
  if (head && (head.last_index !== checked || head.last_hash !== prevHash)) {
    return { ok: false, checked, ...(lastId ? { first_broken_id: lastId } : {}), seen };
  }
  return { ok: true, checked, seen };
}
