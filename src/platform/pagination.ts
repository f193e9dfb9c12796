import { BadRequest } from './errors.ts';
import { stringViolation } from './input-rules.ts';

/** Cursors are opaque to clients: base64url JSON of the last row's sort key. */
export function encodeCursor(key: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });
const MAX_CURSOR_STRING = 255;

/**
 * A cursor is refused (400 `invalid_cursor`) unless it decodes to exactly what this endpoint
 * issues: numbers are non-negative safe integers, strings are 1-255 characters that pass the input
 * rule. Anything else would reach SQL as a value it cannot take.
 */
export function decodeCursor<T extends Record<string, string | number>>(
  cursor: string | undefined,
  shape: { [K in keyof T]: 'string' | 'number' },
): T | undefined {
  if (cursor === undefined) return undefined;
  const invalid = () =>
    new BadRequest('invalid_cursor', 'The cursor is not valid', [
      { path: 'query.cursor', message: 'not a cursor this endpoint issued' },
    ]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(strictUtf8.decode(Buffer.from(cursor, 'base64url')));
  } catch {
    throw invalid();
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalid();
  const obj = parsed as Record<string, unknown>;
  for (const [key, type] of Object.entries(shape)) {
    const value = obj[key];
    const valid =
      type === 'number'
        ? Number.isSafeInteger(value) && (value as number) >= 0
        : typeof value === 'string' &&
          value.length >= 1 &&
          value.length <= MAX_CURSOR_STRING &&
          stringViolation(value) === null;
    if (!valid) throw invalid();
  }
  return obj as T;
}

/** Takes one extra row to know whether another page exists. */
export function page<R, T>(
  rows: R[],
  limit: number,
  toItem: (row: R) => T,
  keyOf: (row: R) => Record<string, string | number>,
): { data: T[]; next_cursor: string | null } {
  const more = rows.length > limit;
  const kept = more ? rows.slice(0, limit) : rows;
  const last = kept[kept.length - 1];
  return {
    data: kept.map(toItem),
    next_cursor: more && last !== undefined ? encodeCursor(keyOf(last)) : null,
  };
}
