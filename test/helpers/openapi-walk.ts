import type { TestApp } from './harness.ts';

/** The parts of /openapi.json the generated walks over every operation read. */
export type Schema = {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: Schema | boolean;
  items?: Schema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  format?: string;
  minimum?: number;
  maxLength?: number;
  maxItems?: number;
  maxProperties?: number;
  pattern?: string;
};
export type Operation = {
  parameters?: { name: string; in: string; schema?: Schema }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
  security?: unknown[];
};
export type OpenApiDoc = {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema> };
};

export async function openApiDoc(app: TestApp): Promise<OpenApiDoc> {
  return (await app.json<OpenApiDoc>('GET', '/openapi.json', undefined, { key: null })).body;
}

/**
 * A catalog, a customer and one of each object the walks address by id (subscription, override,
 * grant, reservation, API key). Answers the ids by the path prefix that names them
 * (`/v1/overrides/` -> the override's id), for filling `{id}` path parameters.
 */
export async function seedWalkObjects(app: TestApp, reason: string): Promise<Record<string, string>> {
  await app.json('POST', '/v1/features', { key: 'calls', name: 'Calls', type: 'metered' });
  await app.json('POST', '/v1/features', { key: 'theme', name: 'Theme', type: 'config' });
  await app.json('POST', '/v1/plans', {
    key: 'pro',
    name: 'Pro',
    entitlements: [
      { feature: 'calls', limit: 1000, reset: 'month', overage: 'deny' },
      { feature: 'theme', value: { c: 1 } },
    ],
  });
  await app.json('PUT', '/v1/customers/acme', { name: 'Acme' });
  const sub = await app.json<{ id: string }>('POST', '/v1/customers/acme/subscriptions', { plan: 'pro' });
  const override = await app.json<{ id: string }>('POST', '/v1/customers/acme/overrides', {
    feature: 'theme',
    value: { c: 2 },
    reason,
  });
  const grant = await app.json<{ id: string }>('POST', '/v1/customers/acme/grants', {
    feature: 'calls',
    amount: 10,
    reason,
  });
  const reservation = await app.json<{ id: string }>('POST', '/v1/reservations', {
    customer_id: 'acme',
    feature: 'calls',
    amount: 1,
    ttl_seconds: 600,
  });
  const key = await app.json<{ id: string }>('POST', '/v1/api-keys', { name: reason, scopes: ['check'] });
  return {
    '/v1/subscriptions/': sub.body.id,
    '/v1/overrides/': override.body.id,
    '/v1/grants/': grant.body.id,
    '/v1/reservations/': reservation.body.id,
    '/v1/api-keys/': key.body.id,
  };
}

/** Follows `$ref`s to the schema they name. */
export function resolveSchema(doc: OpenApiDoc, schema: Schema | undefined): Schema | undefined {
  let s = schema;
  for (let i = 0; s?.$ref && i < 10; i++) s = doc.components.schemas[s.$ref.split('/').pop()!];
  return s;
}

/**
 * A valid-looking value for a schema: every property present, one item per array; with
 * `freeKey`, a free-form object (`additionalProperties`) also gets one key of its own.
 */
export function sampleValue(
  doc: OpenApiDoc,
  schema: Schema | undefined,
  options: { freeKey?: boolean } = {},
  depth = 0,
): unknown {
  const s = resolveSchema(doc, schema);
  const sample = (inner: Schema | undefined) => sampleValue(doc, inner, options, depth + 1);
  if (!s || depth > 8) return 'x';
  if (s.enum) return s.enum[0];
  if (s.const !== undefined) return s.const;
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives) return sample(alternatives.find((a) => resolveSchema(doc, a)?.type !== 'null'));
  const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(s.properties ?? {})) out[k] = sample(v);
      if (options.freeKey && typeof s.additionalProperties === 'object')
        out.free_key = sample(s.additionalProperties);
      return out;
    }
    case 'array':
      return [sample(s.items)];
    case 'integer':
    case 'number':
      return s.minimum ?? 1;
    case 'boolean':
      return true;
    case 'string':
      return s.format === 'date-time' ? '2026-01-15T12:00:00Z' : s.format === 'email' ? 'a@b.test' : 'x';
    default:
      // Any JSON (config values): a string, so it is swept too.
      return 'x';
  }
}
