import fc from 'fast-check';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, serveOverHttp, type TestApp } from '../helpers/harness.ts';
import {
  type OpenApiDoc,
  type Operation,
  openApiDoc,
  resolveSchema,
  type Schema,
  sampleValue,
  seedWalkObjects,
} from '../helpers/openapi-walk.ts';

/**
 * A generated fuzz walk over every operation in /openapi.json. For each one fast-check (seeded,
 * a few runs per operation) sends schema-violating and boundary input: a valid-looking body with
 * one field replaced by a wrong type, a huge, negative or fractional number, an empty, over-long,
 * NUL-carrying or surrogate string, deep nesting, a field removed or an extra one added; whole
 * bodies that are not objects; hostile query values and path segments. No answer may be a 5xx;
 * every 4xx is problem+json with a `code` and the request id, and leaves every table of the
 * database exactly as it was (a digest of all rows, taken before and after).
 */

const SEED = 2323;
const RUNS_PER_OPERATION = 10;

let app: TestApp;
let doc: OpenApiDoc;
let tables: string[];
const ids: Record<string, string> = {};

beforeAll(async () => {
  app = await createTestApp();
  Object.assign(ids, await seedWalkObjects(app, 'fuzz'));
  doc = await openApiDoc(app);
  const rows = await sql<{ name: string }>`
    SELECT table_name AS name FROM information_schema.tables
    WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' AND table_name NOT LIKE 'kysely_%'
    ORDER BY table_name`.execute(app.runtime.deps.db);
  tables = rows.rows.map((r) => r.name);
});
afterAll(async () => app?.close());

/** One hash over every row of every table of this test's database. */
async function digest(): Promise<string> {
  const parts = tables.map(
    (t) =>
      `SELECT '${t}' AS t, count(*) AS n, md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) AS h FROM "${t}" x`,
  );
  const { rows } = await sql<{
    t: string;
    n: string;
    h: string;
  }>`${sql.raw(parts.join(' UNION ALL '))}`.execute(app.runtime.deps.db);
  return rows.map((r) => `${r.t}:${r.n}:${r.h}`).join(',');
}

const _resolve = (schema: Schema | undefined): Schema | undefined => resolveSchema(doc, schema);

const sample = (schema: Schema | undefined): unknown => sampleValue(doc, schema);

function goodParam(path: string, name: string): string {
  if (name === 'customer_id') return 'acme';
  if (name === 'version') return '1';
  if (name === 'environment') return 'test';
  if (name === 'key') return path.startsWith('/v1/features/') ? 'calls' : 'pro';
  for (const [prefix, id] of Object.entries(ids)) if (path.startsWith(prefix)) return id;
  return 'x';
}

const deep = (levels: number): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < levels; i++) v = [v];
  return v;
};

/** Values no schema field should take as they are, and the edges of the ones it might. */
const hostile: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    true,
    0,
    -1,
    -0.5,
    1.5,
    1e308,
    -1e308,
    2 ** 53 + 2,
    -(2 ** 63),
    '',
    ' ',
    'a\u0000b',
    '\ud800',
    'x'.repeat(257),
    'x'.repeat(70_000),
    '1e999',
    '-1',
    '../../etc/passwd',
    "'; DROP TABLE customers; --",
    '__proto__',
    [],
    {},
    { __proto__: { polluted: true } },
    deep(40),
    Array.from({ length: 2000 }, () => 'x'),
  ),
  fc.string({ maxLength: 30 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.array(fc.anything({ maxDepth: 2 }), { maxLength: 3 }),
);

/** Every place in a JSON value: [] is the value itself. */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  const out: (string | number)[][] = [prefix];
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) out.push(...paths(value[i], [...prefix, i]));
  } else if (typeof value === 'object' && value !== null)
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  return out;
}

function replaceAt(value: unknown, at: (string | number)[], next: unknown | typeof REMOVE): unknown {
  if (at.length === 0) return next === REMOVE ? undefined : next;
  const [head, ...rest] = at;
  if (Array.isArray(value)) {
    const copy = [...value];
    if (rest.length === 0 && next === REMOVE) copy.splice(head as number, 1);
    else copy[head as number] = replaceAt(copy[head as number], rest, next);
    return copy;
  }
  const copy = { ...(value as Record<string, unknown>) };
  if (rest.length === 0 && next === REMOVE) delete copy[head as string];
  else copy[head as string] = replaceAt(copy[head as string], rest, next);
  return copy;
}
const REMOVE = Symbol('remove');

interface Probe {
  path: string;
  body?: string;
}

function bodyProbe(base: unknown): fc.Arbitrary<string> {
  const places = paths(base);
  return fc.oneof(
    fc
      .tuple(fc.constantFrom(...places), hostile)
      .map(([at, value]) => JSON.stringify(replaceAt(base, at, value)) ?? 'null'),
    fc
      .constantFrom(...places)
      .map((at) => (at.length === 0 ? '' : (JSON.stringify(replaceAt(base, at, REMOVE)) ?? ''))),
    fc
      .tuple(fc.constantFrom('zz_extra', '__proto__', 'constructor', ''), hostile)
      .map(([k, v]) =>
        typeof base === 'object' && base !== null && !Array.isArray(base)
          ? `${JSON.stringify(base).slice(0, -1)}${Object.keys(base).length > 0 ? ',' : ''}${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}}`
          : JSON.stringify([base, v]),
      ),
    fc.constantFrom('[]', '"x"', '0', 'null', '{', '{"a":1}{', `${'['.repeat(5000)}${']'.repeat(5000)}`),
  );
}

const HOSTILE_SEGMENTS = [
  'x'.repeat(300),
  '%00',
  'a%ED%A0%80',
  '..',
  '%2F',
  '-1',
  '99999999999999999999',
  '%F0%9F%92%A9',
  ' ',
];
const HOSTILE_QUERY = [
  '',
  '-1',
  '0',
  '1.5',
  '1e308',
  '99999999999999999999',
  'x'.repeat(600),
  '%00',
  '%ED%A0%80',
  'true',
  '[]',
  '{"a":1}',
  '2026-13-45T99:99:99Z',
];

function probes(path: string, method: string, op: Operation): fc.Arbitrary<Probe> {
  const params = op.parameters ?? [];
  const pathParams = params.filter((p) => p.in === 'path');
  const queryParams = params.filter((p) => p.in === 'query');
  const fill = (bad?: { name: string; text: string }) =>
    path.replace(/\{(\w+)\}/g, (_, name: string) =>
      bad?.name === name ? bad.text : encodeURIComponent(goodParam(path, name)),
    );
  const good = fill();
  const schema = op.requestBody?.content?.['application/json']?.schema;
  const withBody = method === 'post' || method === 'put' || method === 'patch';
  const base = schema ? sample(schema) : {};
  const validBody = withBody ? JSON.stringify(base) : undefined;
  const options: fc.Arbitrary<Probe>[] = [];
  if (withBody) options.push(bodyProbe(base).map((body) => ({ path: good, body })));
  if (pathParams.length > 0)
    options.push(
      fc.tuple(fc.constantFrom(...pathParams), fc.constantFrom(...HOSTILE_SEGMENTS)).map(([p, text]) => ({
        path: fill({ name: p.name, text }),
        ...(validBody !== undefined ? { body: validBody } : {}),
      })),
    );
  const names = [...queryParams.map((q) => q.name), 'zz_unknown'];
  options.push(
    fc.tuple(fc.constantFrom(...names), fc.constantFrom(...HOSTILE_QUERY)).map(([name, text]) => ({
      path: `${good}?${name}=${text}`,
      ...(validBody !== undefined ? { body: validBody } : {}),
    })),
  );
  return fc.oneof(...options);
}

describe('the fuzz walk over /openapi.json', () => {
  it('never answers 5xx; every 4xx is problem+json and writes nothing', async () => {
    let sent = 0;
    let refused = 0;
    const started = Date.now();
    let before = await digest();
    for (const [path, ops] of Object.entries(doc.paths)) {
      if (!path.startsWith('/v1/')) continue;
      for (const [method, op] of Object.entries(ops)) {
        // Stripe's webhooks answer on the signature, checked before anything else is read.
        await fc.assert(
          fc.asyncProperty(probes(path, method, op), async (probe) => {
            const res = await app.request(method.toUpperCase(), probe.path, probe.body);
            const text = await res.text();
            const what = `${method.toUpperCase()} ${probe.path.slice(0, 200)} ${probe.body?.slice(0, 200) ?? ''} -> ${res.status} ${text.slice(0, 300)}`;
            sent++;
            expect(res.status, what).toBeLessThan(500);
            if (res.status < 400) {
              before = await digest();
              return;
            }
            refused++;
            expect(res.headers.get('content-type'), what).toContain('application/problem+json');
            const problem = JSON.parse(text) as { code?: unknown; request_id?: unknown; status?: unknown };
            expect(problem.code, what).toEqual(expect.any(String));
            expect(problem.status, what).toBe(res.status);
            expect(problem.request_id, what).toBe(res.headers.get('x-request-id'));
            expect(await digest(), what).toBe(before);
          }),
          { seed: SEED, numRuns: RUNS_PER_OPERATION, endOnFailure: true },
        );
      }
    }
    expect(sent).toBeGreaterThan(300);
    expect(refused / sent, `${refused} of ${sent} refused`).toBeGreaterThan(0.6);
    expect(Date.now() - started).toBeLessThan(60_000);
  }, 120_000);
});

describe('the fast paths under the same fuzz', () => {
  it('never answers 5xx on node:http for check, usage and batch; every 4xx is problem+json and writes nothing', async () => {
    const http = await serveOverHttp(app.runtime);
    try {
      let before = await digest();
      for (const path of ['/v1/check', '/v1/usage', '/v1/usage/batch']) {
        const schema = doc.paths[path]?.post?.requestBody?.content?.['application/json']?.schema;
        expect(schema, path).toBeDefined();
        await fc.assert(
          fc.asyncProperty(bodyProbe(sample(schema)), async (body) => {
            const res = await fetch(`${http.base}${path}`, {
              method: 'POST',
              headers: { authorization: `Bearer ${app.checkKey}`, 'content-type': 'application/json' },
              body,
            });
            const text = await res.text();
            const what = `${path} ${body.slice(0, 200)} -> ${res.status} ${text.slice(0, 300)}`;
            expect(res.status, what).toBeLessThan(500);
            if (res.status < 400) {
              before = await digest();
              return;
            }
            expect(res.headers.get('content-type'), what).toContain('application/problem+json');
            expect(await digest(), what).toBe(before);
          }),
          { seed: SEED, numRuns: 30, endOnFailure: true },
        );
      }
    } finally {
      await http.close();
    }
  }, 60_000);
});

describe('another environment and the check scope, on every route', () => {
  it('answers 404 (or a 400 for the body, before any lookup) to another environment’s admin key on every object route, writing nothing', async () => {
    const before = await digest();
    const wrong: string[] = [];
    let hidden = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      if (!path.startsWith('/v1/') || !path.includes('{') || path.startsWith('/v1/webhooks/')) continue;
      for (const [method, op] of Object.entries(ops)) {
        // PUT creates the object when it is missing: from another environment it makes that
        // environment's own one, which is what it should do.
        if (method === 'put' || (op.security ?? []).length === 0) continue;
        const filled = path.replace(/\{(\w+)\}/g, (_, name: string) =>
          encodeURIComponent(goodParam(path, name)),
        );
        const schema = op.requestBody?.content?.['application/json']?.schema;
        const res = await app.json(method.toUpperCase(), filled, schema ? sample(schema) : undefined, {
          key: app.liveAdminKey,
        });
        if (res.status === 404) hidden++;
        else if (res.status !== 400)
          wrong.push(`${method} ${filled}: ${res.status} ${JSON.stringify(res.body)}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(hidden).toBeGreaterThan(20);
    expect(await digest()).toBe(before);
  });
});
