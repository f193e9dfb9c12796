/**
 * CEL conditions on plan entries and overrides.
 *
 * An expression sees two variables: `customer.attributes` (the customer's stored attributes) and
 * `context` (what the caller sent with the check). Validation on save calls `compileCondition`,
 * which rejects syntax errors, unknown variables and expressions that can never be a bool.
 * Evaluation never throws: a runtime error (a missing key, a type mismatch) or a non-bool result
 * is simply `false`, because a condition that cannot be shown to hold must not grant access.
 */
import { Environment, type ParseResult } from '@marcbachmann/cel-js';
import { LRUCache } from 'lru-cache';
import type { CustomerAttributes } from './types.ts';

export type ConditionContext = Record<string, string | number | boolean>;

export interface ConditionInput {
  customer: { attributes: CustomerAttributes };
  context: ConditionContext;
}

export interface CompiledCondition {
  readonly expression: string;
  /** true only when the expression evaluates to the bool `true`. */
  evaluate(input: ConditionInput): boolean;
}

/** A condition that cannot be saved; `message` is the parser's or type checker's, with a caret. */
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
  limits: { maxAstNodes: 1000, maxDepth: 32 },
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
  return {
    expression,
    evaluate(input) {
      try {
        return parsed(toCelInput(input)) === true;
      } catch {
        return false;
      }
    },
  };
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

/** A stored expression that no longer compiles (e.g. saved before validation) never holds. */
function compileOrNever(expression: string): CompiledCondition {
  try {
    return compileCondition(expression);
  } catch {
    return { expression, evaluate: () => false };
  }
}

/**
 * CEL integers are BigInt; JSON gives plain numbers. Whole numbers become ints so that
 * `customer.attributes.seats + 1 == 6` works as written; fractions stay doubles.
 */
function toCelInput(input: ConditionInput): { customer: { attributes: CelMap }; context: CelMap } {
  return {
    customer: { attributes: toCelMap(input.customer.attributes) },
    context: toCelMap(input.context),
  };
}

// A Map, not an object, so that a key like `__proto__` is just a key.
type CelMap = Map<string, string | bigint | number | boolean>;

function toCelMap(values: Record<string, string | number | boolean>): CelMap {
  const out: CelMap = new Map();
  for (const [key, value] of Object.entries(values)) {
    out.set(key, typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : value);
  }
  return out;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
