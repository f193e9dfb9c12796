import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  CheckRequest,
  CheckResult,
  CustomerEntitlement,
  CustomerEntitlements,
  Reservation,
  ReservationRequest,
  TokenResult,
  UsageEvent,
  UsageResult,
} from '../../sdk/src/types.ts';
import { createTestApp, type TestApp } from '../helpers/harness.ts';

/**
 * The SDK's hand-written types against the server's /openapi.json, for every route the SDK
 * calls: the same fields, the same JSON types, the same optional and nullable ones. Each shape
 * below must name every key of its SDK type (the compiler checks that), as `type`, `type|null`,
 * and with a trailing `?` when optional.
 */
type Shape<T> = { [K in keyof T]-?: undefined extends T[K] ? `${string}?` : string };
const shape = <T>(s: Shape<T>) => s as Record<string, string>;

const entitlementRow = shape<CustomerEntitlement>({
  feature: 'string',
  type: 'string',
  has_access: 'boolean',
  enabled: 'boolean?',
  value: 'any?',
  limit: 'number|null?',
  used: 'number?',
  remaining: 'number|null?',
  resets_at: 'string?',
  overage: 'string?',
  overage_used: 'number?',
  sources: 'array',
});
const reservation = shape<Reservation>({
  id: 'string',
  customer_id: 'string',
  feature: 'string',
  amount: 'number',
  committed_amount: 'number|null',
  status: 'string',
  period_start: 'string',
  resets_at: 'string|null',
  expires_at: 'string',
  created_at: 'string',
  settled_at: 'string|null',
  usage: 'object?',
});

type Schema = {
  $ref?: string;
  type?: string | string[];
  nullable?: boolean;
  properties?: Record<string, Schema>;
  required?: string[];
  anyOf?: Schema[];
  allOf?: Schema[];
  oneOf?: Schema[];
  items?: Schema;
};
type Doc = {
  paths: Record<string, Record<string, Record<string, unknown>>>;
  components: { schemas: Record<string, Schema> };
};

let app: TestApp;
let doc: Doc;
beforeAll(async () => {
  app = await createTestApp();
  doc = (await app.json<Doc>('GET', '/openapi.json', undefined, { key: null })).body;
});
afterAll(async () => {
  await app?.close();
});

function deref(s: Schema): Schema {
  return s.$ref ? deref(doc.components.schemas[s.$ref.replace('#/components/schemas/', '')]!) : s;
}

function typeOf(raw: Schema): string {
  const s = deref(raw);
  // A described $ref is `allOf: [{$ref}, {description}]`: the typed members give the type.
  const typed = s.allOf?.filter((a) => a.$ref || a.type || a.anyOf || a.oneOf);
  if (typed?.length === 1) return typeOf(typed[0]!);
  const alts = s.anyOf ?? s.oneOf;
  let types: string[];
  if (alts) types = alts.map((a) => typeOf(a));
  else if (s.type === undefined) return 'any';
  else types = Array.isArray(s.type) ? s.type : [s.type];
  types = types.map((t) => (t === 'integer' ? 'number' : t));
  if (s.nullable) types.push('null');
  const main = [...new Set(types.filter((t) => t !== 'null'))];
  return `${main.join('|')}${types.includes('null') ? '|null' : ''}`;
}

function describeSchema(raw: Schema): Record<string, string> {
  const s = deref(raw);
  const required = new Set(s.required ?? []);
  return Object.fromEntries(
    Object.entries(s.properties ?? {}).map(([k, v]) => [k, `${typeOf(v)}${required.has(k) ? '' : '?'}`]),
  );
}

function body(path: string, method: string): Schema {
  const op = doc.paths[path]?.[method] as { requestBody?: { content: Record<string, { schema: Schema }> } };
  return op.requestBody!.content['application/json']!.schema;
}
function response(path: string, method: string, status: string): Schema {
  const op = doc.paths[path]?.[method] as {
    responses: Record<string, { content: Record<string, { schema: Schema }> }>;
  };
  return op.responses[status]!.content['application/json']!.schema;
}

describe('SDK types match /openapi.json', () => {
  it('POST /v1/check', () => {
    expect(describeSchema(body('/v1/check', 'post'))).toEqual(
      shape<CheckRequest>({
        customer_id: 'string',
        feature: 'string',
        quantity: 'number?',
        context: 'object?',
      }),
    );
    expect(describeSchema(response('/v1/check', 'post', '200'))).toEqual(
      shape<CheckResult>({
        allowed: 'boolean',
        reason: 'string',
        customer_id: 'string',
        feature: 'string',
        type: 'string?',
        value: 'any?',
        limit: 'number|null?',
        used: 'number?',
        remaining: 'number|null?',
        resets_at: 'string?',
        overage_used: 'number?',
        sources: 'array',
        version: 'number',
      }),
    );
  });

  it('GET /v1/customers/{customer_id}/entitlements', () => {
    const list = deref(response('/v1/customers/{customer_id}/entitlements', 'get', '200'));
    expect(describeSchema(list)).toEqual(
      shape<CustomerEntitlements>({
        customer_id: 'string',
        version: 'number',
        evaluated_at: 'string',
        entitlements: 'array',
      }),
    );
    expect(describeSchema(deref(list.properties!.entitlements!).items!)).toEqual(entitlementRow);
  });

  it('POST /v1/usage', () => {
    expect(describeSchema(body('/v1/usage', 'post'))).toEqual(
      shape<UsageEvent>({
        customer_id: 'string',
        feature: 'string',
        value: 'number?',
        member: 'string|number?',
        idempotency_key: 'string',
        timestamp: 'string?',
      }),
    );
    expect(describeSchema(response('/v1/usage', 'post', '200'))).toEqual(
      shape<UsageResult>({
        accepted: 'boolean',
        reason: 'string?',
        used: 'number',
        limit: 'number|null',
        remaining: 'number|null',
        resets_at: 'string|null',
        period_start: 'string',
        overage: 'number',
        credit_used: 'number',
      }),
    );
  });

  it('POST /v1/reservations, /commit and /release', () => {
    expect(describeSchema(body('/v1/reservations', 'post'))).toEqual(
      shape<ReservationRequest>({
        customer_id: 'string',
        feature: 'string',
        amount: 'number',
        ttl_seconds: 'number',
      }),
    );
    expect(describeSchema(response('/v1/reservations', 'post', '201'))).toEqual(reservation);
    expect(describeSchema(response('/v1/reservations/{id}/commit', 'post', '200'))).toEqual(reservation);
    expect(describeSchema(response('/v1/reservations/{id}/release', 'post', '200'))).toEqual(reservation);
  });

  // The token route is built beside the SDK; this comparison runs once the server has it.
  it('POST /v1/customers/{customer_id}/token', (ctx) => {
    const path = '/v1/customers/{customer_id}/token';
    if (!doc.paths[path]) ctx.skip();
    const op = doc.paths[path]!.post as { responses: Record<string, unknown> };
    const status = op.responses['201'] ? '201' : '200';
    expect(describeSchema(response(path, 'post', status))).toEqual(
      shape<TokenResult>({ token: 'string', expires_at: 'string' }),
    );
  });
});
