import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type FeatureSodRule, rulesBroken, rulesNewlyBroken } from '../../src/domain/sod.ts';

const rule = (id: string, features: string[]): FeatureSodRule => ({ id, name: id, features, action: 'deny' });

describe('separation of duties over holdings', () => {
  const payments = rule('r1', ['create_payment', 'approve_payment']);
  const triple = rule('r2', ['a', 'b', 'c']);

  it('breaks a rule when two of its features are held', () => {
    expect(rulesBroken([payments, triple], new Set(['create_payment']))).toEqual([]);
    expect(rulesBroken([payments, triple], new Set(['create_payment', 'approve_payment']))).toEqual([
      payments,
    ]);
    expect(rulesBroken([payments, triple], new Set(['a', 'c', 'x']))).toEqual([triple]);
  });

  it('blames a change only when it adds a feature of a broken rule', () => {
    const before = new Set(['a', 'b']);
    expect(rulesNewlyBroken([triple], before, new Set(['a', 'b', 'x']))).toEqual([]);
    expect(rulesNewlyBroken([triple], before, new Set(['a', 'b', 'c']))).toEqual([triple]);
    expect(rulesNewlyBroken([triple], new Set(['a']), new Set(['a', 'b']))).toEqual([triple]);
  });

  it('newly broken rules are broken after, and never when nothing was added', () => {
    const keys = fc.constantFrom('a', 'b', 'c', 'd');
    fc.assert(
      fc.property(fc.uniqueArray(keys), fc.uniqueArray(keys), (b, a) => {
        const before = new Set(b);
        const after = new Set(a);
        const blamed = rulesNewlyBroken([triple, rule('r3', ['c', 'd'])], before, after);
        for (const r of blamed) expect(rulesBroken([r], after)).toEqual([r]);
        if (a.every((f) => before.has(f))) expect(blamed).toEqual([]);
      }),
    );
  });
});
