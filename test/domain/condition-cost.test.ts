import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ConditionInput,
  ConditionSyntaxError,
  compileCondition,
  evaluateCondition,
  MAX_CONDITION_STRING,
} from '../../src/domain/conditions.ts';

const input = (
  attributes: ConditionInput['customer']['attributes'],
  context: ConditionInput['context'] = {},
): ConditionInput => ({ customer: { attributes }, context });

function refusal(expression: string): string {
  try {
    compileCondition(expression);
  } catch (error) {
    expect(error).toBeInstanceOf(ConditionSyntaxError);
    return (error as Error).message;
  }
  throw new Error(`accepted: ${expression}`);
}

const list30 = `[${Array.from({ length: 30 }, (_, i) => i).join(',')}]`;
const nested = (depth: number): string =>
  depth === 0 ? 'true' : `${list30}.all(x${depth}, ${nested(depth - 1)})`;

describe('compile-time cost bound', () => {
  it.each([
    ['context.s.matches("^(a+)+$")', 'quantified group'],
    ['context.s.matches("(a|aa)*b")', 'quantified group'],
    ['context.s.matches("(x+x+)+y")', 'quantified group'],
    ['context.s.matches("a*a*a*b")', 'backtrack'],
    ['context.s.matches("(a)\\\\1")', 'backreference'],
    ['context.s.matches("a(?=b)")', 'lookaround'],
    ['context.s.matches("(?<!a)b")', 'lookaround'],
    ['context.s.matches("[a-")', 'does not compile'],
    ['context.s.matches(context.p)', 'string literal'],
  ])('refuses the regex in %s', (expression, fragment) => {
    expect(refusal(expression)).toContain(fragment);
  });

  it('refuses macros nested deeper than two', () => {
    expect(refusal(nested(5))).toContain('nested');
    expect(refusal(nested(3))).toContain('nested');
    expect(() => compileCondition(nested(2))).not.toThrow();
  });

  it('refuses work that grows past the budget', () => {
    // Each bind doubles the string: the bound grows as 2^n.
    let doubling = 'context.s';
    for (let i = 0; i < 15; i++) doubling = `cel.bind(v${i}, ${doubling}, v${i} + v${i})`;
    expect(refusal(`${doubling} == "x"`)).toContain('cost');
    expect(refusal('context.all(k, context.exists(j, context[k].contains(context[j])))')).toContain('cost');
  });

  it('refuses list literals over the size limit', () => {
    const big = `[${Array.from({ length: 101 }, (_, i) => i).join(',')}]`;
    expect(refusal(`context.n in ${big}`)).toContain('maxListElements');
  });

  it('accepts everyday conditions', () => {
    for (const expression of [
      "context.device_compliant && customer.attributes.region in ['eu','us']",
      'customer.attributes.seats > 10 || context.beta == true',
      'context.email.matches("^[a-z0-9._%+-]+@example\\\\.com$")',
      'context.email.matches("@(acme|example)\\\\.(com|org)$")',
      'context.s.matches("[0-9]+")',
      'context.tags.split(",").exists(t, t == "beta")',
      '!has(context.beta) || context.beta',
    ]) {
      expect(() => compileCondition(expression), expression).not.toThrow();
    }
  });
});

describe('evaluation within bounds', () => {
  it('refuses (false) a context string over the limit, and records why', () => {
    const long = 'a'.repeat(MAX_CONDITION_STRING + 1);
    const checkInput = input({}, { s: long });
    expect(evaluateCondition('size(context.s) > 0', checkInput)).toBe(false);
    expect(checkInput.refused?.reason).toContain('longer than');
    const fine = input({}, { s: 'a'.repeat(MAX_CONDITION_STRING) });
    expect(evaluateCondition('size(context.s) > 0', fine)).toBe(true);
    expect(fine.refused).toBeUndefined();
  });

  it('refuses an attribute string over the limit', () => {
    const checkInput = input({ region: 'e'.repeat(MAX_CONDITION_STRING + 1) });
    expect(evaluateCondition('customer.attributes.region != "x"', checkInput)).toBe(false);
    expect(checkInput.refused?.reason).toContain('longer than');
  });

  it('a stored hostile condition is refused quickly when evaluated, with a reason', () => {
    const hostile = input({}, { s: `${'a'.repeat(28)}!` });
    const started = performance.now();
    expect(evaluateCondition('context.s.matches("^(a+)+$")', hostile)).toBe(false);
    expect(evaluateCondition(`${nested(5)}`, hostile)).toBe(false);
    expect(performance.now() - started).toBeLessThan(50);
    expect(hostile.refused?.reason).toContain('quantified group');
  });

  it('a false condition is not a refusal', () => {
    const checkInput = input({}, { s: 'b' });
    expect(evaluateCondition('context.s == "a"', checkInput)).toBe(false);
    expect(checkInput.refused).toBeUndefined();
  });
});

/**
 * Milliseconds of the fastest of three runs, so that a garbage collection pause or a busy machine
 * does not count: a condition over its bound is slow every time.
 */
function bestOfThree(run: () => void): number {
  let best = Infinity;
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    run();
    best = Math.min(best, performance.now() - started);
  }
  return best;
}

// Worst-case shapes the checker must still bound: each is accepted, and over random contexts
// within the limits (long strings of few distinct characters are what make regexes backtrack)
// evaluates quickly.
const accepted = [
  'context.s.matches("^[a-z]+b$")',
  'context.s.matches("a+b")',
  'context.s.matches("(ab)*c")',
  'context.s.matches("^a*(b|c)$")',
  'context.s.contains(context.t) || context.t.endsWith(context.s)',
  'context.s.split("a").exists(p, size(p) > 3 && p.startsWith("b"))',
  'context.all(k, context.exists(j, k == j))',
  'customer.attributes.all(k, customer.attributes[k] != context.s)',
  `${list30}.all(x, ${list30}.exists(y, x + y == 59))`,
  'context.s.lowerAscii().upperAscii().trim().startsWith(context.t)',
];

describe('property: accepted conditions evaluate within a small bound', () => {
  it('every accepted worst-case shape compiles', () => {
    for (const expression of accepted) expect(() => compileCondition(expression), expression).not.toThrow();
  });

  it('over random contexts within the limits', () => {
    const text = fc
      .tuple(
        fc.constantFrom('a', 'ab', 'a!', 'b', ',a', 'a,b'),
        fc.integer({ min: 0, max: MAX_CONDITION_STRING }),
      )
      .map(([unit, length]) => unit.repeat(Math.ceil(length / unit.length)).slice(0, length));
    const context = fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(text, fc.integer(), fc.boolean()), {
      maxKeys: 50,
    });
    fc.assert(
      fc.property(fc.constantFrom(...accepted), text, text, context, (expression, s, t, rest) => {
        const checkInput = input(rest, { ...rest, s, t });
        expect(bestOfThree(() => evaluateCondition(expression, checkInput))).toBeLessThan(50);
      }),
      { numRuns: 200 },
    );
  });
});

// Random conditions from pieces that stress the bound: regexes with repeats, string searches,
// splits, concatenation and nested macros over the inputs. Whatever the checker accepts must run
// fast over contexts that push every string to the limit.
const patternPiece = fc.constantFrom(
  'a',
  'b',
  '.',
  'a*',
  'a+',
  '.*',
  '[ab]+',
  '(ab)+',
  '(a|b)',
  'a{2,5}',
  'a?',
  '\\\\d*',
);
const pattern = fc
  .tuple(fc.boolean(), fc.array(patternPiece, { minLength: 1, maxLength: 5 }), fc.boolean())
  .map(([start, pieces, end]) => `${start ? '^' : ''}${pieces.join('')}${end ? '$' : ''}`);
const stringTerm = fc.oneof(
  fc.constantFrom('context.s', 'context.t', 'customer.attributes.s', '"a"', '"ab"'),
  fc.constantFrom('context.s + context.t', 'context.s.lowerAscii()', 'context.t.substring(1)'),
);
const { condition } = fc.letrec<{ condition: string; collection: string }>((tie) => ({
  collection: fc.oneof(
    fc.constantFrom('context', 'customer.attributes', list30, '[context.s, context.t]'),
    stringTerm.map((s) => `${s}.split("a")`),
    stringTerm.map((s) => `${s}.split(",")`),
  ),
  condition: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.tuple(stringTerm, pattern).map(([s, p]) => `${s}.matches("${p}")`),
    fc.tuple(stringTerm, stringTerm).map(([a, b]) => `${a}.contains(${b})`),
    fc.tuple(stringTerm, stringTerm).map(([a, b]) => `${a} == ${b}`),
    fc.tuple(tie('condition'), tie('condition')).map(([a, b]) => `(${a} && ${b})`),
    fc.tuple(tie('condition'), tie('condition')).map(([a, b]) => `(${a} || !${b})`),
    fc
      .tuple(tie('collection'), fc.constantFrom('all', 'exists', 'exists_one'), tie('condition'))
      .map(([c, m, body]) => `${c}.${m}(x, x == context.s || ${body})`),
  ),
})) as { condition: fc.Arbitrary<string> };

describe('property: random accepted conditions evaluate within a small bound', () => {
  it('holds over worst-case contexts', () => {
    let accepted = 0;
    fc.assert(
      fc.property(condition, fc.constantFrom('a', 'ab', 'a,', 'b'), (expression, unit) => {
        try {
          compileCondition(expression);
        } catch (error) {
          expect(error).toBeInstanceOf(ConditionSyntaxError);
          return;
        }
        accepted++;
        const long = unit.repeat(MAX_CONDITION_STRING).slice(0, MAX_CONDITION_STRING);
        const context: ConditionInput['context'] = { s: long, t: `${long.slice(1)}!` };
        for (let i = 0; i < 48; i++) context[`k${i}`] = long;
        const attributes = { ...context };
        const checkInput = input(attributes, context);
        expect(
          bestOfThree(() => evaluateCondition(expression, checkInput)),
          expression,
        ).toBeLessThan(50);
      }),
      { numRuns: 300 },
    );
    expect(accepted).toBeGreaterThan(50);
  });
});
