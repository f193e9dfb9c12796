/**
 * A bound on the work a `matches` pattern can do, for CEL conditions.
 *
 * cel-js runs `matches` on the platform's backtracking engine (`new RegExp(pattern).test(s)`),
 * whose worst case is exponential in the input for patterns like `^(a+)+$`. A linear engine would
 * mean a dependency or our own matcher; instead a pattern is accepted only in a subset whose
 * backtracking is bounded, and the bound is computed for the longest input the condition can see:
 *
 * - no backreferences and no lookarounds (they are what makes a pattern non-regular);
 * - a group under a repeating quantifier (`*`, `+`, `{n,}`, `{n,m}` with m > 1) holds only a
 *   fixed-length run of characters: no quantifier and no `|` inside, so each repetition can be
 *   matched one way only (`(a+)+`, `(a|aa)*` are refused; `[ab]+` says what `(a|b)+` means);
 * - what is left can still backtrack polynomially (`a*a*a*b`), so the number of steps is bounded
 *   by counting, for each quantifier, how many repetition counts it can try (at most the input
 *   length) and charging each count the cost of the rest of the pattern. Unanchored patterns are
 *   tried from every start position. The caller compares the bound with its budget.
 *
 * The bound is conservative (it assumes every continuation runs to its end), so some harmless
 * patterns are refused; anchoring with `^` or dropping a redundant leading `.*` brings them in.
 */

/** Why a pattern is refused; the message is shown to whoever saves the condition. */
export class UnsafePatternError extends Error {
  override readonly name = 'UnsafePatternError';
}

type Node =
  | { kind: 'char' }
  | { kind: 'anchor'; start: boolean }
  | { kind: 'group'; branches: Node[][] }
  | { kind: 'repeat'; body: Node; min: number; max: number };

/**
 * Upper bound on the matcher's steps for `pattern` over an input of at most `inputLength`
 * characters; throws UnsafePatternError for a pattern outside the bounded subset.
 */
export function patternSteps(pattern: string, inputLength: number): number {
  try {
    new RegExp(pattern);
  } catch (error) {
    throw new UnsafePatternError(`the pattern does not compile: ${(error as Error).message}`);
  }
  const root = new PatternParser(pattern).parse();
  checkRepeats(root);
  const n = inputLength;
  const starts = root.branches.every(startsAnchored) ? 1 : n + 1;
  return starts * steps(root, 1, n);
}

/** The cost of matching `node` once from a position and then the rest (`rest` steps). */
function steps(node: Node, rest: number, n: number): number {
  switch (node.kind) {
    case 'char':
    case 'anchor':
      return 1 + rest;
    case 'group': {
      let total = 0;
      for (const branch of node.branches) total += sequenceSteps(branch, rest, n);
      return total;
    }
    case 'repeat': {
      if (node.max <= 1) return (node.min === 0 ? rest : 0) + steps(node.body, rest, n);
      // A repeated body has a fixed length, so each count of repetitions is one way to match.
      const length = Math.max(1, fixedLength(node.body));
      const most = Math.min(node.max, Math.floor(n / length));
      const counts = Math.max(1, most - node.min + 1);
      return counts * length + counts * rest;
    }
  }
}

function sequenceSteps(sequence: Node[], rest: number, n: number): number {
  let cost = rest;
  for (let i = sequence.length - 1; i >= 0; i--) cost = steps(sequence[i] as Node, cost, n);
  return cost;
}

function startsAnchored(branch: Node[]): boolean {
  const first = branch[0];
  if (first === undefined) return false;
  if (first.kind === 'anchor') return first.start;
  if (first.kind === 'group') return first.branches.every(startsAnchored);
  return false;
}

function checkRepeats(node: Node): void {
  if (node.kind === 'group') for (const branch of node.branches) for (const n of branch) checkRepeats(n);
  if (node.kind !== 'repeat') return;
  if (node.max > 1 && !isFixedRun(node.body)) {
    throw new UnsafePatternError(
      'a quantified group may hold only fixed characters (no quantifier or | inside), ' +
        'because nested quantifiers can backtrack exponentially; use a character class instead',
    );
  }
  checkRepeats(node.body);
}

function isFixedRun(node: Node): boolean {
  switch (node.kind) {
    case 'char':
    case 'anchor':
      return true;
    case 'repeat':
      return false;
    case 'group': {
      const [only, ...others] = node.branches;
      return others.length === 0 && only !== undefined && only.every(isFixedRun);
    }
  }
}

function fixedLength(node: Node): number {
  switch (node.kind) {
    case 'char':
      return 1;
    case 'anchor':
    case 'repeat':
      return 0;
    case 'group':
      return (node.branches[0] ?? []).reduce((sum, n) => sum + fixedLength(n), 0);
  }
}

const QUANTIFIER = /^\{(\d+)(,(\d*))?\}/;

/** A parser for the JavaScript (non-unicode) pattern syntax, enough to see its structure. */
class PatternParser {
  private at = 0;
  constructor(private readonly source: string) {}

  parse(): { kind: 'group'; branches: Node[][] } {
    const group = this.alternation();
    if (this.at < this.source.length) throw new UnsafePatternError('unbalanced parenthesis');
    return group;
  }

  private alternation(): { kind: 'group'; branches: Node[][] } {
    const branches: Node[][] = [this.sequence()];
    while (this.source[this.at] === '|') {
      this.at++;
      branches.push(this.sequence());
    }
    return { kind: 'group', branches };
  }

  private sequence(): Node[] {
    const items: Node[] = [];
    while (this.at < this.source.length) {
      const c = this.source[this.at];
      if (c === '|' || c === ')') break;
      const atom = this.atom();
      items.push(this.quantified(atom));
    }
    return items;
  }

  private quantified(atom: Node): Node {
    const c = this.source[this.at];
    let min: number;
    let max: number;
    if (c === '*' || c === '+' || c === '?') {
      this.at++;
      [min, max] = c === '*' ? [0, Infinity] : c === '+' ? [1, Infinity] : [0, 1];
    } else if (c === '{' && QUANTIFIER.test(this.source.slice(this.at))) {
      const m = QUANTIFIER.exec(this.source.slice(this.at)) as RegExpExecArray;
      this.at += m[0].length;
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
    } else {
      return atom;
    }
    if (this.source[this.at] === '?') this.at++; // lazy: same bound
    return { kind: 'repeat', body: atom, min, max };
  }

  private atom(): Node {
    const c = this.source[this.at++];
    switch (c) {
      case '^':
        return { kind: 'anchor', start: true };
      case '$':
        return { kind: 'anchor', start: false };
      case '\\':
        return this.escape();
      case '[':
        this.skipClass();
        return { kind: 'char' };
      case '(':
        return this.group();
      default:
        return { kind: 'char' };
    }
  }

  private escape(): Node {
    const c = this.source[this.at++] ?? '';
    if (c === 'b' || c === 'B') return { kind: 'anchor', start: false };
    if (/[1-9]/.test(c) || c === 'k') throw new UnsafePatternError('backreferences are not allowed');
    return { kind: 'char' };
  }

  private skipClass(): void {
    while (this.at < this.source.length) {
      const c = this.source[this.at++];
      if (c === '\\') this.at++;
      else if (c === ']') return;
    }
  }

  private group(): Node {
    if (this.source[this.at] === '?') {
      const head = this.source.slice(this.at, this.at + 3);
      if (head.startsWith('?=') || head.startsWith('?!') || head === '?<=' || head === '?<!') {
        throw new UnsafePatternError('lookaround assertions are not allowed');
      }
      if (head.startsWith('?:')) this.at += 2;
      else if (head.startsWith('?<')) this.at = this.source.indexOf('>', this.at) + 1;
    }
    const inner = this.alternation();
    this.at++; // ')', known to be there because the pattern compiled
    return inner;
  }
}
