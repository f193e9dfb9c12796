import { describe, expect, it } from 'vitest';
import {
  CONDITION_CACHE_SIZE,
  type ConditionInput,
  ConditionSyntaxError,
  compileCondition,
  evaluateCondition,
} from '../../src/domain/conditions.ts';

const input = (
  attributes: ConditionInput['customer']['attributes'],
  context: ConditionInput['context'] = {},
): ConditionInput => ({ customer: { attributes }, context });

describe('compileCondition', () => {
  it('accepts a bool expression over customer.attributes and context', () => {
    const compiled = compileCondition(
      "context.device_compliant && customer.attributes.region in ['eu','us']",
    );
    expect(compiled.evaluate(input({ region: 'eu' }, { device_compliant: true }))).toBe(true);
    expect(compiled.evaluate(input({ region: 'apac' }, { device_compliant: true }))).toBe(false);
  });

  it.each([
    ['1 +', 'Unexpected token'],
    ['a.b.c(', 'Unexpected token'],
    ['contxt.flag', 'Unknown variable: contxt'],
    ['customer.atributes.region == "eu"', 'atributes'],
    ["'a' + 1", 'no such overload'],
    ['1 + 2', 'must be a bool'],
  ])('rejects %s with a readable message', (expression, fragment) => {
    let caught: unknown;
    try {
      compileCondition(expression);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConditionSyntaxError);
    const error = caught as ConditionSyntaxError;
    expect(error.expression).toBe(expression);
    expect(error.message).toContain(fragment);
  });
});

describe('evaluateCondition', () => {
  it('evaluates the documented example', () => {
    const expression = "context.device_compliant && customer.attributes.region in ['eu','us']";
    expect(evaluateCondition(expression, input({ region: 'us' }, { device_compliant: true }))).toBe(true);
    expect(evaluateCondition(expression, input({ region: 'us' }, { device_compliant: false }))).toBe(false);
  });

  it('treats a missing context key as false instead of throwing', () => {
    const expression = "context.device_compliant && customer.attributes.region in ['eu','us']";
    expect(evaluateCondition(expression, input({ region: 'eu' }))).toBe(false);
    expect(evaluateCondition('!context.beta', input({}))).toBe(false);
    expect(evaluateCondition('customer.attributes.tier == "gold"', input({}))).toBe(false);
  });

  it('lets has() guard optional keys', () => {
    const expression = '!has(context.beta) || context.beta';
    expect(evaluateCondition(expression, input({}))).toBe(true);
    expect(evaluateCondition(expression, input({}, { beta: false }))).toBe(false);
  });

  it('treats type mismatches and non-bool results as false', () => {
    expect(evaluateCondition('context.seats > 3', input({}, { seats: 'many' }))).toBe(false);
    expect(evaluateCondition('context.region', input({}, { region: 'eu' }))).toBe(false);
  });

  it('compares whole numbers as ints and fractions as doubles', () => {
    const attributes = { seats: 5, ratio: 0.5 };
    expect(evaluateCondition('customer.attributes.seats + 1 == 6', input(attributes))).toBe(true);
    expect(evaluateCondition('customer.attributes.seats > 4.5', input(attributes))).toBe(true);
    expect(evaluateCondition('customer.attributes.ratio < 1.0', input(attributes))).toBe(true);
  });

  it('answers false for an expression that does not compile', () => {
    expect(evaluateCondition('1 +', input({}))).toBe(false);
    expect(evaluateCondition('1 +', input({}))).toBe(false);
  });

  it('keys like __proto__ are plain keys', () => {
    expect(evaluateCondition("context.__proto__ == 'x'", input({}, { ['__proto__']: 'x' }))).toBe(true);
    expect(evaluateCondition('has(context.constructor)', input({}))).toBe(false);
  });

  it('stays correct past the cache size', () => {
    for (let i = 0; i < CONDITION_CACHE_SIZE + 10; i++) {
      expect(evaluateCondition(`context.n == ${i}`, input({}, { n: i }))).toBe(true);
    }
    expect(evaluateCondition('context.n == 0', input({}, { n: 0 }))).toBe(true);
  });
});
