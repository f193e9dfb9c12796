import { MAX_CONTEXT_STRING } from '../modules/entitlements/schema.ts';
import { type CheckInput, checkEntitlement } from '../modules/entitlements/service.ts';
import { type FastRoute, parseJsonObject } from '../platform/fast-path.ts';

/**
 * `POST /v1/check` on the node:http fast path (src/platform/fast-path.ts): the same service verb as
 * the Hono route, so answers are identical; anything unusual is answered by the app.
 */
export const checkFastRoute: FastRoute<CheckInput> = {
  path: '/v1/check',
  maxBody: 16 * 1024,
  scope: 'check',
  parse: parseCheck,
  run: checkEntitlement,
};

const SCALAR = new Set(['string', 'number', 'boolean']);

/** The CheckBody schema's rules, checked by hand; null means "let the validating route answer". */
export function parseCheck(body: Buffer): CheckInput | null {
  const value = parseJsonObject(body);
  if (value === null) return null;
  const { customer_id, feature, quantity, context, ...rest } = value;
  for (const _ in rest) return null;
  if (typeof customer_id !== 'string' || customer_id.length < 1 || customer_id.length > 255) return null;
  if (typeof feature !== 'string' || feature.length < 1 || feature.length > 64) return null;
  if (
    quantity !== undefined &&
    !(Number.isInteger(quantity) && (quantity as number) > 0 && (quantity as number) <= 1e12)
  )
    return null;
  if (context !== undefined) {
    if (typeof context !== 'object' || context === null || Array.isArray(context)) return null;
    // The schema builds the record by assignment, which drops an own "__proto__" key: the app
    // answers such a check, so both paths see the same context.
    if (Object.hasOwn(context, '__proto__')) return null;
    const entries = Object.entries(context);
    if (entries.length > 50) return null;
    for (const [k, v] of entries)
      if (k.length > 100 || !SCALAR.has(typeof v) || (typeof v === 'string' && v.length > MAX_CONTEXT_STRING))
        return null;
  }
  return {
    customer_id,
    feature,
    ...(quantity !== undefined ? { quantity: quantity as number } : {}),
    ...(context !== undefined ? { context: context as CheckInput['context'] } : {}),
  };
}
