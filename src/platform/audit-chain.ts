import { createHash } from 'node:crypto';
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
 * The canonical JSON of an event's fields in three pieces around the values of `chain_index` and
 * `prev_hash`, which only the chain head gives: `head + index + mid + JSON(prev_hash) + tail` is
 * `canonicalJson(fields)`. Keys sort as in canonicalJson, so the pieces fall where those keys do.
 */
export function chainPieces(
  fields: Omit<ChainedFields, 'chain_index' | 'prev_hash'>,
): [string, string, string] {
  const all: Record<string, unknown> = { ...fields, chain_index: 0, prev_hash: '' };
  const keys = Object.keys(all)
    .filter((k) => all[k] !== undefined)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const pieces: string[] = [];
  let piece = '{';
  keys.forEach((key, i) => {
    piece += `${i > 0 ? ',' : ''}${JSON.stringify(key)}:`;
    if (key === 'chain_index' || key === 'prev_hash') {
      pieces.push(piece);
      piece = '';
    } else piece += canonicalJson(all[key]);
  });
  pieces.push(`${piece}}`);
  return pieces as [string, string, string];
}

/**
 * The audit entries of one change as the database appends them (`tessera_audit_append`, called by
 * `tessera_commit_change`; see migration 20261207200000): each event's fields, and its canonical
 * JSON in pieces, which the database completes with the chain head's index and hash. The head row
 * is locked from the append until commit, which serialises appends so the chain never forks;
 * `withTransaction` appends last, so the lock is held for that statement and the commit only.
 */
export function auditDrafts(
  environment: string,
  actor: Actor,
  requestId: string | null,
  at: Date,
  entries: AuditEntry[],
): Array<Omit<ChainedFields, 'chain_index' | 'prev_hash'> & { head: string; mid: string; tail: string }> {
  return entries.map((entry) => {
    const fields = {
      id: newId('aud', at.getTime()),
      environment,
      actor: asStoredJson(actor),
      action: entry.action,
      target: asStoredJson(entry.target),
      customer_id: entry.customerId ?? null,
      before: asStoredJson(entry.before),
      after: asStoredJson(entry.after),
      request_id: requestId,
      at: at.toISOString(),
    };
    const [head, mid, tail] = chainPieces(fields);
    return { ...fields, head, mid, tail };
  });
}
