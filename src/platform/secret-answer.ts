import type { Context } from 'hono';

/**
 * Answers that carry a secret (a new API key's `secret`, shown once) must not be kept anywhere:
 * `Cache-Control: no-store` tells browsers and proxies, and the idempotency store keeps a copy
 * with the named fields removed (`field: null` plus `field_redacted: true`).
 */
const secretFields = new WeakMap<Context, readonly string[]>();

/** Marks the answer the handler is about to send as carrying these top-level JSON fields as secrets. */
export function carriesSecret(c: Context, fields: readonly string[]): void {
  c.header('cache-control', 'no-store');
  secretFields.set(c, fields);
}

/** The secret fields the handler marked, if any. */
export function secretFieldsOf(c: Context): readonly string[] | undefined {
  return secretFields.get(c);
}

/** A JSON answer with its secret fields emptied and flagged, for storing and replaying. */
export function redactSecrets(json: string, fields: readonly string[]): string {
  const value: unknown = JSON.parse(json);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return json;
  const out: Record<string, unknown> = { ...(value as Record<string, unknown>) };
  for (const field of fields) {
    if (!(field in out)) continue;
    out[field] = null;
    out[`${field}_redacted`] = true;
  }
  return JSON.stringify(out);
}
