import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { findViolation, MAX_JSON_DEPTH, stringViolation } from '../../src/platform/input-rules.ts';
import { decodeCursor, encodeCursor } from '../../src/platform/pagination.ts';

const nested = (depth: number): unknown => {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { v: value };
  return value;
};

describe('the input rule for parsed JSON', () => {
  it('accepts ordinary JSON, including paired surrogates (emoji)', () => {
    expect(findViolation({ name: 'Acme 😀', tags: ['a', 'b'], n: 1, ok: true, none: null })).toBeNull();
    expect(findViolation(nested(MAX_JSON_DEPTH - 1))).toBeNull();
  });

  it('names the first string with a NUL or an unpaired surrogate, keys included', () => {
    expect(findViolation({ customer: { attributes: { plan: 'a\u0000b' } } })).toMatchObject({
      path: 'customer.attributes.plan',
    });
    expect(findViolation({ events: [{}, {}, {}, { idempotency_key: 'k\ud800' }] })).toMatchObject({
      path: 'events[3].idempotency_key',
    });
    expect(findViolation({ attributes: { 'x\udc00': 1 } })).toMatchObject({ path: 'attributes' });
    expect(findViolation('\ud800')).toMatchObject({ path: '(body)' });
    expect(findViolation({ a: 'ok' }, 'query')).toBeNull();
  });

  it('refuses nesting deeper than the limit, without recursion even at 100,000 levels', () => {
    expect(findViolation(nested(MAX_JSON_DEPTH + 1))?.message).toMatch(/deeper than 32/);
    expect(findViolation(JSON.parse(`${'['.repeat(100_000)}${']'.repeat(100_000)}`))).not.toBeNull();
  });

  it('agrees with isWellFormed and NUL for any string', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => {
        const bad = !s.isWellFormed() || s.includes('\u0000');
        expect(stringViolation(s) !== null).toBe(bad);
        expect(findViolation({ k: [s] }) !== null).toBe(bad);
      }),
    );
  });
});

describe('cursors', () => {
  const forged = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const refused = (cursor: string, shape: Record<string, 'string' | 'number'>) =>
    expect(() => decodeCursor(cursor, shape)).toThrowError(expect.objectContaining({ status: 400 }));

  it('refuses a cursor that does not decode to valid values', () => {
    refused(forged({ i: 1.5 }), { i: 'number' });
    refused(forged({ i: 1e20 }), { i: 'number' });
    refused(forged({ i: -1 }), { i: 'number' });
    refused(forged({ id: 'a\u0000b' }), { id: 'string' });
    refused(forged({ id: '\ud800' }), { id: 'string' });
    refused(forged({ id: 'x'.repeat(600) }), { id: 'string' });
    refused(Buffer.from([0x7b, 0x22, 0x69, 0x64, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]).toString('base64url'), {
      id: 'string',
    });
    refused('not base64 at all!', { id: 'string' });
  });

  it('round-trips the cursors it issues', () => {
    expect(decodeCursor(encodeCursor({ i: 42 }), { i: 'number' })).toEqual({ i: 42 });
    expect(decodeCursor(encodeCursor({ id: 'cus_😀' }), { id: 'string' })).toEqual({ id: 'cus_😀' });
  });
});
