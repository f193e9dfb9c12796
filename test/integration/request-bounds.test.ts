import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/harness.ts';
import { type OpenApiDoc, openApiDoc, type Schema } from '../helpers/openapi-walk.ts';

/**
 * Every request schema in /openapi.json bounds what a caller can send: each string has a
 * `maxLength` (or is an enum, a const or a date-time), each array a `maxItems`, and each free-form
 * object (`additionalProperties`) a `maxProperties`. A route added later without bounds fails here.
 */

let app: TestApp;
let doc: OpenApiDoc;
beforeAll(async () => {
  app = await createTestApp();
  doc = await openApiDoc(app);
});
afterAll(async () => app?.close());

function unbounded(schema: Schema | undefined, at: string, seen: Set<string>, out: string[]): void {
  if (!schema) return;
  if (schema.$ref) {
    const name = schema.$ref.split('/').pop()!;
    if (seen.has(name)) return;
    unbounded(doc.components.schemas[name], at, new Set([...seen, name]), out);
    return;
  }
  for (const alt of [...(schema.anyOf ?? []), ...(schema.oneOf ?? []), ...(schema.allOf ?? [])])
    unbounded(alt, at, seen, out);
  if (schema.enum !== undefined || schema.const !== undefined) return;
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  if (types.includes('string') && schema.maxLength === undefined && schema.format !== 'date-time')
    out.push(`${at}: string without maxLength`);
  if (types.includes('array')) {
    if (schema.maxItems === undefined) out.push(`${at}: array without maxItems`);
    unbounded(schema.items, `${at}[]`, seen, out);
  }
  if (types.includes('object') || schema.properties) {
    for (const [key, value] of Object.entries(schema.properties ?? {}))
      unbounded(value, `${at}.${key}`, seen, out);
    if (typeof schema.additionalProperties === 'object') {
      if (schema.maxProperties === undefined) out.push(`${at}: free-form object without maxProperties`);
      unbounded(schema.additionalProperties, `${at}.*`, seen, out);
    }
  }
}

describe('request bounds in /openapi.json', () => {
  it('bounds every string, array and free-form object a request can carry', () => {
    const out: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const at = `${method.toUpperCase()} ${path}`;
        for (const p of op.parameters ?? []) unbounded(p.schema, `${at} ${p.in}.${p.name}`, new Set(), out);
        unbounded(op.requestBody?.content?.['application/json']?.schema, `${at} body`, new Set(), out);
      }
    }
    expect(out).toEqual([]);
  });
});
