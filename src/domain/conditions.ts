/**
 * CEL conditions on plan entries and overrides.
 *
 * An expression sees two variables: `customer.attributes` (the customer's stored attributes) and
 * `context` (what the caller sent with the check). Validation on save calls `compileCondition`,
 * which rejects syntax errors, unknown variables and expressions that can never be a bool.
 * Evaluation never throws: a runtime error (a missing key, a type mismatch) or a non-bool result
 * is simply `false`, because a condition that cannot be shown to hold must not grant access.
 *
 * Evaluation is synchronous on the event loop, so its cost is bounded (condition-cost.ts): on save
 * and again when a stored condition is compiled for evaluation, a condition whose worst case over
 * inputs within the limits is too expensive is refused; at evaluation, inputs over the limits
 * (a string longer than MAX_CONDITION_STRING, a map with more than MAX_CONDITION_ENTRIES entries)
 * are refused. A refused condition does not hold, and says why in `input.refused`.
 */
import { Environment, type ParseResult } from '@marcbachmann/cel-js';
import { LRUCache } from 'lru-cache';
import {
  ConditionCostError,
  conditionCost,
  MAX_CONDITION_ENTRIES,
  MAX_CONDITION_STRING,
} from './condition-cost.ts';
import type { CustomerAttributes } from './types.ts';

export { MAX_CONDITION_ENTRIES, MAX_CONDITION_STRING } from './condition-cost.ts';

export type ConditionContext = Record<string, string | number | boolean>;

export interface ConditionInput {
  customer: { attributes: CustomerAttributes };
  context: ConditionContext;
  /**
   * Set by evaluation, the first time a condition is refused rather than evaluated (over its cost
   * bound, or inputs over the limits), so the caller can log why.
   */
  refused?: ConditionRefusal;
}

export interface ConditionRefusal {
  expression: string;
  reason: string;
}

export interface CompiledCondition {
  readonly expression: string;
  /** true only when the expression evaluates to the bool `true`. */
  evaluate(input: ConditionInput): boolean;
}

/**
 * A condition that cannot be saved; `message` is the parser's or type checker's, with a caret, or
 * says which cost limit it exceeds.
 */
export class ConditionSyntaxError extends Error {
  override readonly name = 'ConditionSyntaxError';
  constructor(
    readonly expression: string,
    message: string,
  ) {
    super(message);
  }
}

/** How many distinct compiled expressions stay in memory; conditions are few and shared. */
export const CONDITION_CACHE_SIZE = 1000;

// `customer` has a schema so a typo like `customer.atributes` fails at save time; `context` is an
// open map because its keys are whatever the product backend sends.
const environment = new Environment({
  homogeneousAggregateLiterals: false,
  limits: { maxAstNodes: 1000, maxDepth: 32, maxListElements: 100, maxMapEntries: 100 },
})
  .registerVariable('customer', { schema: { attributes: 'map' } })
  .registerVariable('context', 'map');

export function compileCondition(expression: string): CompiledCondition {
  let parsed: ParseResult;
  try {
    parsed = environment.parse(expression);
  } catch (error) {
    throw new ConditionSyntaxError(expression, messageOf(error));
  }
  const checked = parsed.check();
  if (!checked.valid) {
    throw new ConditionSyntaxError(expression, checked.error?.message ?? 'invalid expression');
  }
  // `dyn` may still be a bool at runtime (e.g. `context.flag`); anything else never is.
  if (checked.type !== 'bool' && checked.type !== 'dyn') {
    throw new ConditionSyntaxError(expression, `a condition must be a bool, this is ${checked.type}`);
  }
  try {
    conditionCost(parsed.ast);
  } catch (error) {
    if (error instanceof ConditionCostError) throw new ConditionSyntaxError(expression, error.message);
    throw error;
  }
  return {
    expression,
    evaluate(input) {
      const celInput = toCelInput(input);
      if (typeof celInput === 'string') return refuse(input, expression, celInput);
      try {
        return parsed(celInput) === true;
      } catch {
        return false;
      }
    },
  };
}

function refuse(input: ConditionInput, expression: string, reason: string): false {
  input.refused ??= { expression, reason };
  return false;
}

const cache = new LRUCache<string, CompiledCondition>({ max: CONDITION_CACHE_SIZE });

export function evaluateCondition(expression: string, input: ConditionInput): boolean {
  let compiled = cache.get(expression);
  if (compiled === undefined) {
    compiled = compileOrNever(expression);
    cache.set(expression, compiled);
  }
  return compiled.evaluate(input);
}

/**
 * A stored expression that no longer compiles (saved before validation, or before the cost
 * limits) never holds, and says why each time it is evaluated.
 */
function compileOrNever(expression: string): CompiledCondition {
  try {
    return compileCondition(expression);
  } catch (error) {
    const reason = `the stored condition is refused: ${messageOf(error)}`;
    return { expression, evaluate: (input) => refuse(input, expression, reason) };
  }
}

/**
 * CEL integers are BigInt; JSON gives plain numbers. Whole numbers become ints so that
 * `customer.attributes.seats + 1 == 6` works as written; fractions stay doubles. Inputs over the
 * limits the cost bound assumes give the reason instead.
 */
function toCelInput(input: ConditionInput): { customer: { attributes: CelMap }; context: CelMap } | string {
  const attributes = toCelMap(input.customer.attributes, 'customer.attributes');
  if (typeof attributes === 'string') return attributes;
  const context = toCelMap(input.context, 'context');
  if (typeof context === 'string') return context;
  return { customer: { attributes }, context };
}

// A Map, not an object, so that a key like `__proto__` is just a key.
type CelMap = Map<string, string | bigint | number | boolean>;

function toCelMap(values: Record<string, string | number | boolean>, name: string): CelMap | string {
  const out: CelMap = new Map();
  for (const [key, value] of Object.entries(values)) {
    if (
      key.length > MAX_CONDITION_STRING ||
      (typeof value === 'string' && value.length > MAX_CONDITION_STRING)
    ) {
      return `${name}.${key.slice(0, 100)} is longer than ${MAX_CONDITION_STRING} characters`;
    }
    out.set(key, typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : value);
  }
  if (out.size > MAX_CONDITION_ENTRIES) return `${name} has more than ${MAX_CONDITION_ENTRIES} entries`;
  return out;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
