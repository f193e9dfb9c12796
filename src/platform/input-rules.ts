import type { MiddlewareHandler } from 'hono';
import { BadRequest, type FieldError, ValidationFailed } from './errors.ts';

declare global {
  interface String {
    /** ES2024 (Node 20 has it; the project's lib is ES2023). */
    isWellFormed(): boolean;
  }
}

/**
 * The one input rule, applied where requests are parsed (JSON bodies, path parameters, query
 * values, cursors): no string may hold U+0000 or an unpaired surrogate (PostgreSQL refuses the
 * first, UTF-8 cannot carry the second and would store U+FFFD), and JSON nests at most
 * MAX_JSON_DEPTH levels (the body's own object or array is level 1).
 */
export const MAX_JSON_DEPTH = 32;

/** Why a string breaks the rule, or null when it is fine. */
export function stringViolation(s: string): string | null {
  if (s.includes('\u0000')) return 'must not contain U+0000 (NUL)';
  if (!s.isWellFormed()) return 'must be well-formed Unicode (an unpaired surrogate was found)';
  return null;
}

const childPath = (parent: string, key: string | number) =>
  typeof key === 'number' ? `${parent}[${key}]` : parent === '' ? key : `${parent}.${key}`;

/**
 * The first field that breaks the rule in a parsed JSON value, named like the schema errors
 * (`customer.attributes.plan`, `events[3].idempotency_key`), or null. Iterative, so no input can
 * overflow the stack; a bad key is reported at its object's path. `depth` is how deep `value`
 * sits in the body it came from (0: it is the body).
 */
export function findViolation(value: unknown, prefix = '', depth = 0): FieldError | null {
  const name = (path: string) => (path === '' ? '(body)' : path);
  const stack: { value: unknown; path: string; depth: number }[] = [{ value, path: prefix, depth }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    const v = item.value;
    if (typeof v === 'string') {
      const message = stringViolation(v);
      if (message !== null) return { path: name(item.path), message };
      continue;
    }
    if (typeof v !== 'object' || v === null) continue;
    const depth = item.depth + 1;
    if (depth > MAX_JSON_DEPTH)
      return { path: name(item.path), message: `nests deeper than ${MAX_JSON_DEPTH} levels` };
    // Pushed in reverse, so the first bad field in document order is the one reported.
    if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--)
        stack.push({ value: v[i], path: childPath(item.path, i), depth });
      continue;
    }
    const keys = Object.keys(v);
    for (let i = keys.length - 1; i >= 0; i--) {
      const key = keys[i]!;
      stack.push({ value: (v as Record<string, unknown>)[key], path: childPath(item.path, key), depth });
    }
    for (const key of keys) {
      const message = stringViolation(key);
      if (message !== null) return { path: name(item.path), message: `has a key that ${message}` };
    }
  }
  return null;
}

/** Throws the 400 for a value that breaks the rule. */
export function enforceInputRule(value: unknown, prefix = '', depth = 0): void {
  const violation = findViolation(value, prefix, depth);
  if (violation !== null) throw new ValidationFailed([violation]);
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * Reads a JSON body once, after authentication: bytes that are not UTF-8, malformed JSON and
 * anything the input rule refuses answer 400 before any route sees them. The parsed value is what
 * the route's validator gets (`c.req.json()` is answered from it), and the text stays in Hono's
 * body cache for the idempotency hash.
 */
export function jsonBodyRule(): MiddlewareHandler {
  return async (c, next) => {
    if (!BODY_METHODS.has(c.req.method)) return next();
    const type = c.req.header('content-type');
    // request-edge has already refused bodies that are not JSON; webhooks read their raw bytes.
    if (type === undefined || c.req.path.startsWith('/v1/webhooks/')) return next();
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    if (bytes.length === 0) return next();
    let text: string;
    try {
      text = strictUtf8.decode(bytes);
    } catch {
      throw new ValidationFailed([{ path: '(body)', message: 'not valid UTF-8' }]);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new BadRequest('malformed_json', 'The body is not valid JSON', [
        { path: '(body)', message: 'not valid JSON' },
      ]);
    }
    enforceInputRule(parsed);
    // Hono's cache holds promises although its type names the methods.
    (c.req.bodyCache as { text?: Promise<string> }).text = Promise.resolve(text);
    // An own property shadows HonoRequest's `json()`, which would parse the text again.
    c.req.json = <T>() => Promise.resolve(parsed as T);
    return next();
  };
}

/**
 * Path parameters and query values: every percent-escape must decode to UTF-8 and the decoded
 * strings must pass the rule. `target` is the route validator's ('param' or 'query'); `values`
 * are Hono's decoded values (which keep an escape it could not decode as it was).
 */
export function enforceUrlRule(
  target: 'param' | 'query',
  values: Record<string, unknown>,
  routePath: string,
  url: string,
): void {
  const prefix = target === 'param' ? 'path' : 'query';
  for (const [key, value] of Object.entries(values)) {
    const strings = Array.isArray(value) ? value : [value];
    for (const s of strings) {
      if (typeof s !== 'string') continue;
      const message = stringViolation(s);
      if (message !== null) throw new ValidationFailed([{ path: `${prefix}.${key}`, message }]);
    }
  }
  if (!url.includes('%')) return;
  const bad = target === 'param' ? undecodablePathParam(routePath, url) : undecodableQueryParam(url);
  if (bad !== null)
    throw new ValidationFailed([{ path: `${prefix}.${bad}`, message: 'not valid percent-encoded UTF-8' }]);
}

function decodes(raw: string): boolean {
  try {
    decodeURIComponent(raw);
    return true;
  } catch {
    return false;
  }
}

/** The parameter whose raw path segment does not decode, or null. */
function undecodablePathParam(routePath: string, url: string): string | null {
  const pathStart = url.indexOf('/', url.indexOf('//') + 2);
  const query = url.indexOf('?', pathStart);
  const segments = url.slice(pathStart, query === -1 ? undefined : query).split('/');
  const template = routePath.split('/');
  for (let i = 0; i < template.length; i++) {
    const part = template[i]!;
    if (part.startsWith(':') && !decodes(segments[i] ?? '')) return part.slice(1);
  }
  return null;
}

/** The query parameter whose name or value does not decode, or null. */
function undecodableQueryParam(url: string): string | null {
  const query = url.indexOf('?');
  if (query === -1) return null;
  const end = url.indexOf('#', query);
  for (const pair of url.slice(query + 1, end === -1 ? undefined : end).split('&')) {
    const eq = pair.indexOf('=');
    const rawName = (eq === -1 ? pair : pair.slice(0, eq)).replaceAll('+', ' ');
    const rawValue = eq === -1 ? '' : pair.slice(eq + 1).replaceAll('+', ' ');
    if (!decodes(rawName)) return rawName;
    if (!decodes(rawValue)) return decodes(rawName) ? decodeURIComponent(rawName) : rawName;
  }
  return null;
}
