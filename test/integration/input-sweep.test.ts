import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, serveOverHttp, services, type TestApp } from '../helpers/harness.ts';
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
 * The input rule swept over every operation in /openapi.json: NUL and unpaired-surrogate strings
 * in every path parameter, query parameter and body string (values and free-form keys), JSON
 * nested far too deep, and forged cursors. No answer is a 5xx; every one is a 4xx problem+json
 * with a `code` and the `request_id`, and nothing changed (the audit chain has no new event and
 * no usage was counted). POST /v1/check, /v1/usage and /v1/usage/batch are also sent through a
 * real node:http server, so their fast paths are covered.
 */

let app: TestApp;
let http: Awaited<ReturnType<typeof serveOverHttp>>;
let doc: OpenApiDoc;
const ids: Record<string, string> = {};

beforeAll(async () => {
  app = await createTestApp({ redis: services.redis, config: { apiKeyCacheSeconds: 5 } });
  Object.assign(ids, await seedWalkObjects(app, 'sweep'));
  doc = await openApiDoc(app);
  http = await serveOverHttp(app.runtime);
});
afterAll(async () => {
  await http?.close();
  await app?.close();
});

/** A valid-looking value for a path parameter, so the other parameters reach real objects. */
function goodParam(path: string, name: string): string {
  if (name === 'customer_id') return 'acme';
  if (name === 'version') return '1';
  if (name === 'key') return path.startsWith('/v1/features/') ? 'calls' : 'pro';
  for (const [prefix, id] of Object.entries(ids)) if (path.startsWith(prefix)) return id;
  return 'x';
}

const BAD_STRINGS = ['a\u0000b', '\ud800', 'x\udc00y'];
/** What a URL can carry: a NUL, and escapes that are not UTF-8 (a lone surrogate, overlong, cut). */
const BAD_URL_TEXT = ['%00', 'a%00b', '%ED%A0%80', '%C0%80', '%E2%82'];
const forged = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
const FORGED_CURSORS = [
  forged({ i: 1.5 }),
  forged({ i: 1e20 }),
  forged({ id: 'a\u0000' }),
  forged({ key: '\ud800' }),
  forged({ id: 1, key: 2, i: 'x' }),
  forged([]),
  'garbage',
];
const DEEP = `${'['.repeat(6000)}${']'.repeat(6000)}`;

const _resolve = (schema: Schema | undefined): Schema | undefined => resolveSchema(doc, schema);

const sample = (schema: Schema | undefined): unknown => sampleValue(doc, schema, { freeKey: true });

/** Every way to put a bad string into the body: each string value, and each key. */
function mutations(body: unknown): unknown[] {
  const out: unknown[] = [];
  const visit = (value: unknown, replace: (v: unknown) => unknown) => {
    if (typeof value === 'string') {
      for (const bad of BAD_STRINGS) out.push(replace(bad));
      return;
    }
    if (Array.isArray(value)) {
      value.forEach((item, i) => {
        visit(item, (v) => replace(value.map((x, j) => (j === i ? v : x))));
      });
      return;
    }
    if (typeof value === 'object' && value !== null) {
      const entries = Object.entries(value);
      for (const [k, item] of entries) {
        visit(item, (v) => replace({ ...value, [k]: v }));
        out.push(replace(Object.fromEntries(entries.map(([k2, v2]) => [k2 === k ? `${k}\u0000` : k2, v2]))));
      }
    }
  };
  visit(body, (v) => v);
  const first = typeof body === 'object' && body !== null ? Object.keys(body)[0] : undefined;
  if (first !== undefined) out.push({ raw: `{"${first}":${DEEP}}` });
  out.push({ raw: DEEP });
  return out;
}

interface Probe {
  method: string;
  path: string;
  body?: unknown;
}

function probesFor(path: string, method: string, op: Operation): Probe[] {
  const params = op.parameters ?? [];
  const pathParams = params.filter((p) => p.in === 'path');
  const queryParams = params.filter((p) => p.in === 'query');
  const fill = (bad?: { name: string; text: string }) =>
    path.replace(/\{(\w+)\}/g, (_, name: string) =>
      bad?.name === name ? bad.text : encodeURIComponent(goodParam(path, name)),
    );
  const good = fill();
  const schema = op.requestBody?.content?.['application/json']?.schema;
  const base = schema ? sample(schema) : { x: 'x' };
  const upper = method.toUpperCase();
  const withBody = upper === 'POST' || upper === 'PUT' || upper === 'PATCH';
  const probes: Probe[] = [];
  for (const p of pathParams)
    for (const text of BAD_URL_TEXT)
      probes.push({ method: upper, path: fill({ name: p.name, text }), ...(withBody ? { body: base } : {}) });
  for (const q of queryParams) {
    const texts = q.name === 'cursor' ? [...BAD_URL_TEXT, ...FORGED_CURSORS] : BAD_URL_TEXT;
    for (const text of texts) probes.push({ method: upper, path: `${good}?${q.name}=${text}` });
    if (q.name === 'context')
      probes.push({ method: upper, path: `${good}?context=${encodeURIComponent('{"k":"\\u0000"}')}` });
  }
  if (withBody) for (const body of mutations(base)) probes.push({ method: upper, path: good, body });
  return probes;
}

const payload = (body: unknown) =>
  typeof body === 'object' && body !== null && 'raw' in body
    ? (body as { raw: string }).raw
    : JSON.stringify(body);

async function expectRefused(
  probe: Probe,
  res: { status: number; headers: Headers; text: string },
  label: string,
): Promise<void> {
  const what = `${label} ${probe.method} ${probe.path} ${probe.body === undefined ? '' : payload(probe.body).slice(0, 200)}`;
  expect(res.status, `${what} -> ${res.text.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(res.status, what).toBeLessThan(500);
  expect(res.headers.get('content-type'), what).toContain('application/problem+json');
  const body = JSON.parse(res.text) as { code?: unknown; request_id?: unknown };
  expect(body.code, what).toEqual(expect.any(String));
  expect(body.request_id, what).toBe(res.headers.get('x-request-id'));
}

async function auditEvents(): Promise<number> {
  return (await app.json<{ checked: number }>('GET', '/v1/audit-events/verify')).body.checked;
}

async function callsUsed(): Promise<number> {
  return (await app.json<{ used: number }>('POST', '/v1/check', { customer_id: 'acme', feature: 'calls' }))
    .body.used;
}

describe('the input sweep over /openapi.json', () => {
  it('finds no 5xx, and every bad input is a 4xx problem that changes nothing', async () => {
    const before = { audit: await auditEvents(), used: await callsUsed() };
    let sent = 0;
    for (const [path, ops] of Object.entries(doc.paths)) {
      if (!path.startsWith('/v1/')) continue;
      for (const [method, op] of Object.entries(ops)) {
        for (const probe of probesFor(path, method, op)) {
          const res = await app.request(
            probe.method,
            probe.path,
            probe.body === undefined ? undefined : payload(probe.body),
          );
          await expectRefused(
            probe,
            { status: res.status, headers: res.headers, text: await res.text() },
            'app',
          );
          sent++;
        }
      }
    }
    expect(sent).toBeGreaterThan(500);
    expect(await auditEvents()).toBe(before.audit);
    expect(await callsUsed()).toBe(before.used);
  });

  it('holds on the node:http fast paths of check, usage and batch', async () => {
    const before = { audit: await auditEvents(), used: await callsUsed() };
    let sent = 0;
    for (const path of ['/v1/check', '/v1/usage', '/v1/usage/batch']) {
      const op = doc.paths[path]?.post;
      expect(op, path).toBeDefined();
      for (const probe of probesFor(path, 'post', op!)) {
        if (probe.body === undefined) continue;
        // Twice: the first request may look the key up, the second is taken at once.
        for (let i = 0; i < 2; i++) {
          const res = await fetch(`${http.base}${probe.path}`, {
            method: 'POST',
            headers: { authorization: `Bearer ${app.checkKey}`, 'content-type': 'application/json' },
            body: payload(probe.body),
          });
          await expectRefused(
            probe,
            { status: res.status, headers: res.headers, text: await res.text() },
            'http',
          );
          sent++;
        }
      }
    }
    expect(sent).toBeGreaterThan(50);
    expect(await auditEvents()).toBe(before.audit);
    expect(await callsUsed()).toBe(before.used);
  });
});
