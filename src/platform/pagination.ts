import { BadRequest } from './errors.ts';

/** Cursors are opaque to clients: base64url JSON of the last row's sort key. */
export function encodeCursor(key: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(key)).toString('base64url');
}

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
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw invalid();
  const obj = parsed as Record<string, unknown>;
  for (const [key, type] of Object.entries(shape)) {
    if (typeof obj[key] !== type) throw invalid();
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
