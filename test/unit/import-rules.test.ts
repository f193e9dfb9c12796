import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * The arrows of docs/architecture.md, enforced: src/domain imports nothing outside itself,
 * src/platform imports neither src/modules nor the app's wiring, and no file under src/ is part of
 * an import cycle (type-only imports count: a cycle of types is still two modules that cannot be
 * understood apart).
 */
const SRC = path.resolve('src');
const IMPORT =
  /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sourceFiles(full);
    return full.endsWith('.ts') ? [full] : [];
  });
}

/** Each file under src/ and the files under src/ it imports (relative imports only). */
function importGraph(root = SRC): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(root)) {
    const text = readFileSync(file, 'utf8');
    const targets: string[] = [];
    for (const match of text.matchAll(IMPORT)) {
      const spec = match[1] ?? match[2];
      if (!spec?.startsWith('.')) continue;
      targets.push(path.resolve(path.dirname(file), spec));
    }
    graph.set(file, targets);
  }
  return graph;
}

const rel = (file: string) => path.relative(SRC, file);

function violations(graph: Map<string, string[]>): string[] {
  const out: string[] = [];
  for (const [file, targets] of graph) {
    const from = rel(file);
    for (const target of targets) {
      const to = rel(target);
      if (from.startsWith('domain/') && !to.startsWith('domain/')) out.push(`${from} -> ${to}`);
      // config.ts is the validated environment, not wiring: platform may read its type.
      const allowed = to.startsWith('platform/') || to.startsWith('domain/') || to === 'config.ts';
      if (from.startsWith('platform/') && !allowed) out.push(`${from} -> ${to}`);
    }
  }
  return out;
}

/** Every cycle found by a depth-first walk, each named once by the files on it. */
function cycles(graph: Map<string, string[]>): string[] {
  const found = new Set<string>();
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (!graph.has(next)) continue;
      const s = state.get(next);
      if (s === 'open') {
        const loop = stack.slice(stack.indexOf(next)).map(rel);
        found.add([...loop, rel(next)].join(' -> '));
      } else if (s === undefined) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return [...found];
}

describe('import rules', () => {
  const graph = importGraph();

  it('finds the source files and their imports', () => {
    expect(graph.size).toBeGreaterThan(50);
    expect(graph.get(path.join(SRC, 'app.ts'))?.length).toBeGreaterThan(5);
  });

  it('domain imports only itself; platform imports neither modules nor the app wiring', () => {
    expect(violations(graph)).toEqual([]);
  });

  it('has no import cycles under src/', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('catches a planted violation and a planted cycle', () => {
    const a = path.join(SRC, 'platform/a.ts');
    const b = path.join(SRC, 'modules/b/b.ts');
    const planted = new Map([
      [a, [b]],
      [b, [a]],
    ]);
    expect(violations(planted)).toEqual(['platform/a.ts -> modules/b/b.ts']);
    expect(cycles(planted)).toHaveLength(1);
  });
});
