/**
 * A static bound on what a CEL condition can cost to evaluate, computed from its AST.
 *
 * cel-js has no step counter or deadline, and evaluation is synchronous on the event loop, so
 * the bound has to hold before a condition runs. Every value gets a size bound (`len`: characters
 * of a string or elements of a list/map; `total`: everything inside; `item`: the bound of one
 * element) derived from the input limits (`context` and `customer.attributes` are maps of at most
 * MAX_CONDITION_ENTRIES entries whose strings have at most MAX_CONDITION_STRING characters; the
 * evaluator refuses larger inputs). Every node gets a cost: a fixed charge for evaluating the node
 * plus the work on its data (copying, comparing, searching, matching), and a macro costs its body
 * times the receiver's length. Units are roughly nanoseconds on a slow core (measured: a node
 * ~75 ns, a backtracking step ~5 ns, a character compared or copied ~1 ns).
 *
 * Refused: macros nested deeper than MAX_MACRO_DEPTH, `matches` with anything but a string
 * literal pattern in the bounded subset (regex-cost.ts), functions outside the known set, and any
 * condition whose bound exceeds CONDITION_COST_BUDGET. Sizes that grow without limit (a
 * `cel.bind` that doubles a string twenty times) show up as cost, since building a value costs
 * its size.
 */
import type { ASTNode } from '@marcbachmann/cel-js';
import { patternSteps, UnsafePatternError } from './regex-cost.ts';

/** Longest string (context or attribute value, or key) a condition is evaluated over. */
export const MAX_CONDITION_STRING = 1024;
/** Most entries in `context` or `customer.attributes` a condition is evaluated over. */
export const MAX_CONDITION_ENTRIES = 100;
/** Deepest nesting of comprehension macros (all, exists, exists_one, map, filter). */
export const MAX_MACRO_DEPTH = 2;
/** The bound a condition's cost may not exceed: about 20 ms of work in the worst case. */
export const CONDITION_COST_BUDGET = 20_000_000;

const NODE = 100;
const REGEX_STEP = 5;
/** cel-js builds `new RegExp(pattern)` on every call (V8 caches the compiled code, not the object). */
const REGEX_CALL = 2000;

export class ConditionCostError extends Error {
  override readonly name = 'ConditionCostError';
}

interface Size {
  len: number;
  total: number;
  /** Bound of one element (list item, map key or value); null: anything up to `total`. */
  item: Size | null;
}

interface Bound extends Size {
  cost: number;
}

const SCALAR: Size = { len: 1, total: 1, item: null };
const INPUT_STRING: Size = { len: MAX_CONDITION_STRING, total: MAX_CONDITION_STRING, item: null };
const INPUT_MAP: Size = {
  len: MAX_CONDITION_ENTRIES,
  total: MAX_CONDITION_ENTRIES * (2 * MAX_CONDITION_STRING + 1),
  item: INPUT_STRING,
};
const CUSTOMER: Size = { len: 1, total: INPUT_MAP.total + 1, item: INPUT_MAP };

const MACROS = new Set(['all', 'exists', 'exists_one', 'map', 'filter']);
const CONVERSIONS = new Set([
  'int',
  'uint',
  'double',
  'bool',
  'string',
  'bytes',
  'dyn',
  'type',
  'timestamp',
  'duration',
]);
const TIME_PARTS = new Set([
  'getDate',
  'getDayOfMonth',
  'getDayOfWeek',
  'getDayOfYear',
  'getFullYear',
  'getHours',
  'getMilliseconds',
  'getMinutes',
  'getMonth',
  'getSeconds',
]);

/** The cost bound of a parsed condition; throws ConditionCostError when it is refused. */
export function conditionCost(ast: ASTNode): number {
  const cost = new CostWalker().bound(ast, new Map(), 0).cost;
  if (!(cost <= CONDITION_COST_BUDGET)) {
    throw new ConditionCostError(
      `the condition's worst-case cost (${formatCost(cost)}) is over the limit (${formatCost(CONDITION_COST_BUDGET)}): ` +
        'iterate over smaller collections or nest fewer macros',
    );
  }
  return cost;
}

function formatCost(cost: number): string {
  return Number.isFinite(cost) ? cost.toExponential(1) : 'unbounded';
}

type Scope = Map<string, Size>;

function item(size: Size): Size {
  return size.item ?? { len: size.total, total: size.total, item: null };
}

function join(a: Size, b: Size): Size {
  const items = a.item === null || b.item === null ? null : join(a.item, b.item);
  return { len: Math.max(a.len, b.len), total: Math.max(a.total, b.total), item: items };
}

function string(len: number): Size {
  return { len, total: len, item: null };
}

function withCost(size: Size, cost: number): Bound {
  return { len: size.len, total: size.total, item: size.item, cost };
}

class CostWalker {
  bound(node: ASTNode, scope: Scope, depth: number): Bound {
    switch (node.op) {
      case 'value': {
        const v = node.args;
        const len = typeof v === 'string' ? v.length : v instanceof Uint8Array ? v.length : 1;
        return withCost(string(len), NODE);
      }
      case 'id':
        return withCost(this.variable(node.args, scope), NODE);
      case '.':
      case '.?': {
        const object = this.bound(node.args[0], scope, depth);
        return withCost(item(object), NODE + object.cost);
      }
      case '[]':
      case '[?]': {
        const [object, key] = this.two(node.args, scope, depth);
        return withCost(item(object), NODE + object.cost + key.cost + key.total);
      }
      case 'list': {
        const items = this.all(node.args, scope, depth);
        return this.aggregate(items, items);
      }
      case 'map': {
        const keys = this.all(
          node.args.map(([k]) => k),
          scope,
          depth,
        );
        const values = this.all(
          node.args.map(([, v]) => v),
          scope,
          depth,
        );
        return this.aggregate([...keys, ...values], keys);
      }
      case '!_':
      case '-_': {
        const operand = this.bound(node.args, scope, depth);
        return withCost(SCALAR, NODE + operand.cost);
      }
      case '&&':
      case '||': {
        const [a, b] = this.two(node.args, scope, depth);
        return withCost(SCALAR, NODE + a.cost + b.cost);
      }
      case '?:': {
        const [testNode, yesNode, noNode] = node.args;
        const test = this.bound(testNode, scope, depth);
        const [yes, no] = this.two([yesNode, noNode], scope, depth);
        return withCost(join(yes, no), NODE + test.cost + Math.max(yes.cost, no.cost));
      }
      case '+': {
        const [a, b] = this.two(node.args, scope, depth);
        const size: Size = {
          len: a.len + b.len,
          total: a.total + b.total,
          item: a.item === null || b.item === null ? null : join(a.item, b.item),
        };
        return withCost(size, NODE + a.cost + b.cost + a.total + b.total);
      }
      case '==':
      case '!=':
      case '<':
      case '<=':
      case '>':
      case '>=':
      case '-':
      case '*':
      case '/':
      case '%': {
        const [a, b] = this.two(node.args, scope, depth);
        return withCost(SCALAR, NODE + a.cost + b.cost + Math.min(a.total, b.total));
      }
      case 'in': {
        const [needle, haystack] = this.two(node.args, scope, depth);
        return withCost(SCALAR, NODE + needle.cost + haystack.cost + haystack.len * needle.total);
      }
      case 'call':
        return this.call(node.args[0], node.args[1], scope, depth);
      case 'rcall':
        return this.method(node.args[0], node.args[1], node.args[2], scope, depth);
    }
    throw new ConditionCostError(
      `the expression form ${String((node as ASTNode).op)} is not allowed in conditions`,
    );
  }

  private two(nodes: readonly [ASTNode, ASTNode], scope: Scope, depth: number): [Bound, Bound] {
    return [this.bound(nodes[0], scope, depth), this.bound(nodes[1], scope, depth)];
  }

  private all(nodes: readonly ASTNode[], scope: Scope, depth: number): Bound[] {
    return nodes.map((n) => this.bound(n, scope, depth));
  }

  private aggregate(parts: Bound[], elements: Bound[]): Bound {
    let cost = NODE;
    let total = elements.length;
    let items: Size | null = null;
    for (const p of parts) {
      cost += p.cost + p.total;
      total += p.total;
      items = items === null ? p : join(items, p);
    }
    return withCost({ len: elements.length, total, item: items ?? SCALAR }, cost);
  }

  private variable(name: string, scope: Scope): Size {
    const bound = scope.get(name);
    if (bound !== undefined) return bound;
    if (name === 'context') return INPUT_MAP;
    if (name === 'customer') return CUSTOMER;
    return SCALAR; // type names (`int`), the `cel` namespace
  }

  private call(name: string, args: readonly ASTNode[], scope: Scope, depth: number): Bound {
    const bounds = this.all(name === 'has' ? [] : args, scope, depth);
    const cost = bounds.reduce((sum, b) => sum + b.cost, NODE);
    const [arg] = bounds;
    if (name === 'has') return withCost(SCALAR, NODE * (1 + countNodes(args[0])));
    if (name === 'size') return withCost(SCALAR, cost);
    if (!CONVERSIONS.has(name))
      throw new ConditionCostError(`the function ${name}() is not allowed in conditions`);
    if (arg === undefined) return withCost(SCALAR, cost);
    const work = cost + arg.total;
    switch (name) {
      case 'dyn':
        return withCost(arg, cost);
      case 'string':
        return withCost(string(Math.max(arg.total, 32)), work);
      case 'bytes':
        return withCost(string(3 * arg.total), work);
      default:
        return withCost(SCALAR, work);
    }
  }

  private method(
    name: string,
    receiverNode: ASTNode,
    args: readonly ASTNode[],
    scope: Scope,
    depth: number,
  ): Bound {
    if (MACROS.has(name)) return this.macro(name, receiverNode, args, scope, depth);
    if (name === 'bind' && receiverNode.op === 'id' && receiverNode.args === 'cel') {
      const [variable, valueNode, body] = args as [ASTNode, ASTNode, ASTNode];
      const value = this.bound(valueNode, scope, depth);
      const inner = new Map(scope).set(String(variable.args), value);
      const result = this.bound(body, inner, depth);
      return withCost(result, NODE + value.cost + result.cost);
    }
    const receiver = this.bound(receiverNode, scope, depth);
    const bounds = this.all(args, scope, depth);
    const cost = bounds.reduce((sum, b) => sum + b.cost, NODE + receiver.cost);
    const [first, second] = bounds;
    const n = receiver.len;
    switch (name) {
      case 'size':
      case 'at':
        return withCost(SCALAR, cost);
      case 'startsWith':
      case 'endsWith':
        return withCost(SCALAR, cost + (first?.len ?? 0));
      case 'contains':
      case 'indexOf':
      case 'lastIndexOf':
        return withCost(SCALAR, cost + n * (first?.len ?? 1) + (second?.cost ?? 0));
      case 'lowerAscii':
      case 'upperAscii':
      case 'trim':
      case 'substring':
      case 'string':
        return withCost(string(n), cost + n);
      case 'hex':
      case 'base64':
        return withCost(string(2 * n + 4), cost + 2 * n);
      case 'json':
        return withCost({ len: n, total: n, item: null }, cost + n);
      case 'split': {
        const part = string(n);
        return withCost(
          { len: n + 1, total: 2 * n + 1, item: part },
          cost + n * Math.max(1, first?.len ?? 1),
        );
      }
      case 'join': {
        const len = receiver.total + receiver.len * (first?.len ?? 0);
        return withCost(string(len), cost + len);
      }
      case 'matches':
        return withCost(SCALAR, cost + REGEX_CALL + REGEX_STEP * this.patternCost(args[0], n));
    }
    if (TIME_PARTS.has(name)) return withCost(SCALAR, cost);
    throw new ConditionCostError(`the function ${name}() is not allowed in conditions`);
  }

  private patternCost(pattern: ASTNode | undefined, inputLength: number): number {
    if (pattern === undefined || pattern.op !== 'value' || typeof pattern.args !== 'string') {
      throw new ConditionCostError(
        'matches() takes a string literal pattern, so that it can be checked on save',
      );
    }
    let steps: number;
    try {
      steps = patternSteps(pattern.args, inputLength);
    } catch (error) {
      if (error instanceof UnsafePatternError) {
        throw new ConditionCostError(`matches("${pattern.args}"): ${error.message}`);
      }
      throw error;
    }
    if (REGEX_STEP * steps > CONDITION_COST_BUDGET) {
      throw new ConditionCostError(
        `matches("${pattern.args}") can backtrack up to ${formatCost(steps)} steps over ${inputLength} characters: ` +
          'use fewer quantifiers that can match the same text, anchor it with ^, or drop a leading .*',
      );
    }
    return steps;
  }

  private macro(
    name: string,
    receiverNode: ASTNode,
    args: readonly ASTNode[],
    scope: Scope,
    depth: number,
  ): Bound {
    if (depth >= MAX_MACRO_DEPTH) {
      throw new ConditionCostError(`macros (${name}) may be nested at most ${MAX_MACRO_DEPTH} deep`);
    }
    const receiver = this.bound(receiverNode, scope, depth);
    const [variable, ...bodies] = args as [ASTNode, ...ASTNode[]];
    const inner = new Map(scope).set(String(variable.args), item(receiver));
    const results = this.all(bodies, inner, depth + 1);
    const perItem = results.reduce((sum, b) => sum + b.cost, NODE);
    const cost = NODE + receiver.cost + receiver.len * perItem;
    const n = receiver.len;
    if (name === 'filter') return withCost({ len: n, total: receiver.total, item: receiver.item }, cost);
    if (name === 'map') {
      const transform = results[results.length - 1] as Bound;
      return withCost(
        { len: n, total: n * (transform.total + 1), item: transform },
        cost + n * transform.total,
      );
    }
    return withCost(SCALAR, cost);
  }
}

function countNodes(node: ASTNode | undefined): number {
  let count = 0;
  for (let n: ASTNode | undefined = node; n !== undefined && count < 1000; count++) {
    n = n.op === '.' || n.op === '.?' ? n.args[0] : undefined;
  }
  return count;
}
