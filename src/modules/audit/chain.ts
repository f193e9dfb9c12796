import { createHash } from 'node:crypto';

/**
 * The audit chain: hash = SHA-256(prev_hash + canonical JSON of the event without its hash).
 * Canonical JSON sorts object keys at every depth, so the hash does not depend on how Postgres
 * (jsonb) or JavaScript happened to order them.
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
