import { createHash } from 'node:crypto';
import type { Tx } from './db.ts';
import { newId } from './ids.ts';

/**
 * The audit chain: hash = SHA-256(prev_hash + canonical JSON of the event without its hash).
 * Canonical JSON sorts object keys at every depth, so the hash does not depend on how Postgres
 * (jsonb) or JavaScript happened to order them.
 *
 * Writing the chain is plumbing, like the outbox: `withTransaction` (context.ts) appends what a
 * change collected just before commit. Reading, verifying, exporting and checkpointing the chain
 * belong to the audit slice (src/modules/audit).
 */
export const GENESIS_HASH = '0'.repeat(64);

export interface ChainedFields {
  id: string;
  environment: string;
  chain_index: number;
  actor: unknown;
  action: string;
  target: unknown;
  customer_id: string | null;
  before: unknown;
  after: unknown;
  request_id: string | null;
  at: string;
  prev_hash: string;
}

export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function chainHash(fields: ChainedFields): string {
  return createHash('sha256').update(fields.prev_hash).update(canonicalJson(fields)).digest('hex');
}

/** What jsonb will give back: dates become strings, undefined disappears. */
export function asStoredJson(value: unknown): unknown {
  return value === undefined ? null : JSON.parse(JSON.stringify(value));
}

export interface Actor {
  type: 'api_key' | 'system' | 'stripe';
  id: string | null;
  name: string | null;
  /**
   * The person an API key acted for (`Tessera-Actor`), beside the key. Absent when none was named,
   * so events written before the header existed hash exactly as they did.
   */
  person?: string;
}

export interface AuditEntry {
  action: string;
  target: { type: string; id: string };
  customerId?: string | null;
  before?: unknown;
  after?: unknown;
}

export interface AuditEvent {
  id: string;
  environment: string;
  chain_index: number;
  actor: Actor;
  action: string;
  target: { type: string; id: string };
  customer_id: string | null;
  before: unknown;
  after: unknown;
  request_id: string | null;
  at: string;
  prev_hash: string;
  hash: string;
}

/**
 * Appends entries to the environment's chain. The head row is locked for the rest of the
 * transaction, which serialises appends so the chain never forks; callers append last, just
 * before commit, to keep that lock short.
 */
export async function appendAuditEvents(
  tx: Tx,
  environment: string,
  actor: Actor,
  requestId: string | null,
  at: Date,
  entries: AuditEntry[],
): Promise<AuditEvent[]> {
  if (entries.length === 0) return [];
  const head = await tx
    .selectFrom('audit_heads')
    .select(['last_index', 'last_hash'])
    .where('environment', '=', environment)
    .forUpdate()
    .executeTakeFirstOrThrow();
  let index = head.last_index;
  let prevHash = head.last_hash;
  const events: AuditEvent[] = [];
  for (const entry of entries) {
    index += 1;
    const fields: ChainedFields = {
      id: newId('aud', at.getTime()),
      environment,
      chain_index: index,
      actor: asStoredJson(actor),
      action: entry.action,
      target: asStoredJson(entry.target),
      customer_id: entry.customerId ?? null,
      before: asStoredJson(entry.before),
      after: asStoredJson(entry.after),
      request_id: requestId,
      at: at.toISOString(),
      prev_hash: prevHash,
    };
    const hash = chainHash(fields);
    events.push({ ...(fields as Omit<AuditEvent, 'hash'>), hash });
    prevHash = hash;
  }
  await tx
    .insertInto('audit_events')
    .values(
      events.map((e) => ({
        ...e,
        actor: JSON.stringify(e.actor),
        target: JSON.stringify(e.target),
        before: e.before === null ? null : JSON.stringify(e.before),
        after: e.after === null ? null : JSON.stringify(e.after),
      })),
    )
    .execute();
  await tx
    .updateTable('audit_heads')
    .set({ last_index: index, last_hash: prevHash })
    .where('environment', '=', environment)
    .execute();
  return events;
}
