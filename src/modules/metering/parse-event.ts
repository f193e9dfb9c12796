import { parseJsonObject } from '../../platform/fast-path.ts';
import type { UsageEventInput } from './schema.ts';

const text = (v: unknown, max: number): v is string =>
  typeof v === 'string' && v.length >= 1 && v.length <= max;

/**
 * The UsageEvent schema's rules, checked by hand (far cheaper than the schema, and events come by
 * the thousand); null means "let the schema answer": it alone words the errors, and it alone
 * checks timestamps.
 */
export function parseUsageEvent(body: Buffer | Record<string, unknown>): UsageEventInput | null {
  const value = Buffer.isBuffer(body) ? parseJsonObject(body) : body;
  if (value === null) return null;
  // Timestamps take the schema's full ISO-8601 check: the route does that.
  for (const key in value) if (!FIELDS.has(key)) return null;
  const { customer_id, feature, value: amount, member, idempotency_key } = value;
  if (!text(customer_id, 255) || !text(feature, 64) || !text(idempotency_key, 255)) return null;
  if (
    amount !== undefined &&
    !(Number.isInteger(amount) && (amount as number) >= 0 && (amount as number) <= 1e12)
  )
    return null;
  if (member !== undefined && !text(member, 255) && !(typeof member === 'number' && Number.isFinite(member)))
    return null;
  // Exactly the schema's fields, each as the schema takes it: the object is the input as it is
  // (events come by the thousand; no copy made of each).
  return value as unknown as UsageEventInput;
}

const FIELDS = new Set(['customer_id', 'feature', 'value', 'member', 'idempotency_key']);
