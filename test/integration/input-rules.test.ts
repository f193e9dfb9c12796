import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, serveOverHttp, services, type TestApp } from '../helpers/harness.ts';

/**
 * One input rule where requests are parsed: strings with NUL or unpaired surrogates, JSON deeper
 * than 32, forged cursors, fractional quantities and non-UTF-8 charsets are 4xx naming the field,
 * and requests node:http or the URL builder refuse still get problem+json with a request id.
 */
let app: TestApp;
let http: Awaited<ReturnType<typeof serveOverHttp>>;

/** `{"a":[{"a":[...1...]}]}`: two levels of nesting per step, written as text (too deep to stringify). */
const deep = (steps: number): string => `${'{"a":['.repeat(steps)}1${']}'.repeat(steps)}`;

beforeAll(async () => {
  app = await createTestApp({ redis: services.redis, config: { apiKeyCacheSeconds: 5 } });
  await app.json('POST', '/v1/features', { key: 'calls', name: 'Calls', type: 'metered' });
  await app.json('POST', '/v1/features', { key: 'theme', name: 'Theme', type: 'config' });
  await app.json('POST', '/v1/plans', {
    key: 'pro',
    name: 'Pro',
    entitlements: [
      { feature: 'calls', limit: 100, reset: 'month', overage: 'deny' },
      { feature: 'theme', value: { c: 1 } },
    ],
  });
  await app.json('PUT', '/v1/customers/acme', { name: 'Acme' });
  await app.json('POST', '/v1/customers/acme/subscriptions', { plan: 'pro' });
  http = await serveOverHttp(app.runtime);
});
afterAll(async () => {
  await http?.close();
  await app?.close();
});

const auditCount = async () =>
  (await app.json<{ data: unknown[] }>('GET', '/v1/audit-events?limit=200')).body.data.length;

function expectProblem(
  res: { status: number; body: unknown; headers: Headers },
  status: number | number[],
  path?: string,
) {
  const statuses = Array.isArray(status) ? status : [status];
  expect(statuses, JSON.stringify(res.body)).toContain(res.status);
  expect(res.headers.get('content-type')).toContain('application/problem+json');
  const body = res.body as { code?: string; request_id?: string; errors?: { path: string }[] };
  expect(body.code).toEqual(expect.any(String));
  expect(body.request_id).toEqual(res.headers.get('x-request-id'));
  if (path !== undefined) expect(body.errors?.map((e) => e.path)).toContain(path);
}

describe('strings with NUL or unpaired surrogates', () => {
  it('refuses them in path ids with 400 or 404, never 500', async () => {
    for (const path of [
      '/v1/subscriptions/sub_%00',
      '/v1/customers/a%00b/entitlements',
      '/v1/customers/a%00b/overrides',
      '/v1/grants/g%00',
      '/v1/reservations/r%00',
      '/v1/customers/%ED%A0%80',
      '/v1/features/%ff',
    ]) {
      expectProblem(await app.json('GET', path), [400, 404]);
    }
    expectProblem(await app.json('DELETE', '/v1/api-keys/k%00'), [400, 404]);
    expectProblem(await app.json('DELETE', '/v1/overrides/o%00'), [400, 404]);
    expectProblem(await app.json('PUT', '/v1/customers/a%00b', { name: 'x' }), 400, 'path.customer_id');
  });

  it('refuses them in query filters, naming the parameter', async () => {
    expectProblem(await app.json('GET', '/v1/customers?email=%00'), 400, 'query.email');
    for (const name of ['customer_id', 'actor', 'action'])
      expectProblem(await app.json('GET', `/v1/audit-events?${name}=a%00`), 400, `query.${name}`);
    expectProblem(await app.json('GET', '/v1/audit-events?actor=%ED%A0%80'), 400, 'query.actor');
    expectProblem(await app.json('GET', '/v1/customers?email=%E0%A4%A'), 400, 'query.email');
  });

  it('refuses them in JSON bodies, naming the field, and stores nothing', async () => {
    const before = await auditCount();
    const body = (s: string) => `{"name":"${s}"}`;
    expectProblem(await app.json('PUT', '/v1/customers/nul', body('a\\u0000b')), 400, 'name');
    expectProblem(
      await app.json('PUT', '/v1/customers/sur', '{"attributes":{"plan":"\\ud800"}}'),
      400,
      'attributes.plan',
    );
    expectProblem(
      await app.json(
        'POST',
        '/v1/features',
        '{"key":"f1","name":"F","type":"boolean","description":"\\udc00"}',
      ),
      400,
      'description',
    );
    expectProblem(
      await app.json('POST', '/v1/features', '{"key":"f2","name":"\\u0000","type":"boolean"}'),
      400,
      'name',
    );
    expectProblem(
      await app.json(
        'POST',
        '/v1/reservations',
        '{"customer_id":"\\u0000","feature":"calls","amount":1,"ttl_seconds":5}',
      ),
      400,
      'customer_id',
    );
    expect((await app.json('GET', '/v1/customers/sur')).status).toBe(404);
    expect((await app.json('GET', '/v1/features/f1')).status).toBe(404);
    expect(await auditCount()).toBe(before);
  });

  it('refuses invalid UTF-8 in a body instead of storing U+FFFD', async () => {
    const bytes = Buffer.concat([
      Buffer.from('{"name":"'),
      Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from('"}'),
    ]);
    const res = await fetch(`${http.base}/v1/customers/bytes`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${app.adminKey}`, 'content-type': 'application/json' },
      body: bytes,
    });
    expect(res.status).toBe(400);
    expect((await app.json('GET', '/v1/customers/bytes')).status).toBe(404);
  });

  it('refuses them in check, usage and batch, on the app and on the fast paths', async () => {
    const cases: [string, string, string][] = [
      ['/v1/check', '{"customer_id":"acme\\u0000","feature":"calls"}', 'customer_id'],
      ['/v1/check', '{"customer_id":"acme","feature":"calls","context":{"k":"\\ud800"}}', 'context.k'],
      ['/v1/usage', '{"customer_id":"\\ud800","feature":"calls","idempotency_key":"k1"}', 'customer_id'],
      [
        '/v1/usage',
        '{"customer_id":"acme","feature":"calls","idempotency_key":"nul\\u0000"}',
        'idempotency_key',
      ],
      [
        '/v1/usage/batch',
        '{"events":[{"customer_id":"acme","feature":"calls","idempotency_key":"b1"},{"customer_id":"acme","feature":"calls","idempotency_key":"b\\u0000"}]}',
        'events[1].idempotency_key',
      ],
    ];
    for (const [path, body, field] of cases) {
      expectProblem(await app.json('POST', path, body, { key: app.checkKey }), 400, field);
      // Twice over HTTP: the first call may look the key up, the second takes the fast path.
      for (let i = 0; i < 2; i++) {
        const res = await fetch(`${http.base}${path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${app.checkKey}`, 'content-type': 'application/json' },
          body,
        });
        expectProblem({ status: res.status, body: await res.json(), headers: res.headers }, 400, field);
      }
    }
    // Nothing was counted: the NUL key and the batch's good first event alike.
    const check = await app.json<{ used: number }>('POST', '/v1/check', {
      customer_id: 'acme',
      feature: 'calls',
    });
    expect(check.body.used).toBe(0);
  });
});

describe('forged cursors', () => {
  const forged = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  it('answer 400 invalid_cursor', async () => {
    for (const [path, cursor] of [
      ['/v1/audit-events', forged({ i: 1.5 })],
      ['/v1/audit-events', forged({ i: 1e20 })],
      ['/v1/customers', forged({ id: 'a\u0000' })],
      ['/v1/features', forged({ key: '\ud800' })],
      ['/v1/api-keys', forged({ id: 'a\u0000' })],
      ['/v1/customers/acme/subscriptions', forged({ id: 'a\u0000' })],
      ['/v1/customers/acme/grants', forged({ id: 'a\u0000' })],
    ] as const) {
      const res = await app.json('GET', `${path}?cursor=${cursor}`);
      expectProblem(res, 400, 'query.cursor');
    }
  });
});

describe('JSON depth', () => {
  it('refuses a config value nested 6,000 deep on plans and overrides', async () => {
    const before = await auditCount();
    const value = deep(3000);
    expectProblem(
      await app.json(
        'POST',
        '/v1/plans',
        `{"key":"deep","name":"Deep","entitlements":[{"feature":"theme","value":${value}}]}`,
      ),
      400,
    );
    const override = (v: string) => `{"feature":"theme","reason":"deep","value":${v}}`;
    const refused = await app.json('POST', '/v1/customers/acme/overrides', override(value));
    expectProblem(refused, 400);
    // The field named is where the nesting passes the limit, inside `value`.
    expect((refused.body as { errors: { path: string }[] }).errors[0]?.path).toMatch(/^value\.a\[0\]/);
    // The body's object is level 1: a value of 31 levels makes 32, which is fine; one more is not.
    const ok = await app.json('POST', '/v1/customers/acme/overrides', override(`[${deep(15)}]`));
    expect(ok.status, JSON.stringify(ok.body)).toBe(201);
    expectProblem(await app.json('POST', '/v1/customers/acme/overrides', override(deep(16))), 400);
    expect(await auditCount()).toBe(before + 1);
  });

  it("counts a batch event's depth from the body on the fast path as the app does", async () => {
    // The body is level 1, `events` 2, the event 3: an event field 30 levels deep makes 33.
    const body = `{"events":[{"customer_id":"acme","feature":"calls","idempotency_key":"deep-1","properties":${deep(15)}}]}`;
    expectProblem(await app.json('POST', '/v1/usage/batch', body, { key: app.checkKey }), 400);
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${http.base}/v1/usage/batch`, {
        method: 'POST',
        headers: { authorization: `Bearer ${app.checkKey}`, 'content-type': 'application/json' },
        body,
      });
      expect(res.status).toBe(400);
    }
  });
});

describe('numbers and charsets', () => {
  it('refuses fractional quantities, amounts and limits', async () => {
    for (const amount of [0.1, 1e-300, 1.5])
      expectProblem(
        await app.json('POST', '/v1/customers/acme/grants', { feature: 'calls', amount, reason: 'x' }),
        400,
        'amount',
      );
    expectProblem(
      await app.json('POST', '/v1/check', { customer_id: 'acme', feature: 'calls', quantity: 0.5 }),
      400,
      'quantity',
    );
    expectProblem(
      await app.json('POST', '/v1/customers/acme/overrides', { feature: 'calls', limit: 2.5, reason: 'x' }),
      400,
      'limit',
    );
  });

  it('answers 415 to a JSON body in another charset', async () => {
    const res = await app.json(
      'PUT',
      '/v1/customers/utf16',
      { name: 'x' },
      {
        headers: { 'content-type': 'application/json; charset=utf-16' },
      },
    );
    expectProblem(res, 415);
    const ok = await app.json(
      'PUT',
      '/v1/customers/utf8',
      { name: 'x' },
      {
        headers: { 'content-type': 'application/json; charset=UTF-8' },
      },
    );
    expect(ok.status).toBe(201);
  });
});

/** Sends raw bytes and reads the whole answer (the server closes after a parse error). */
function raw(
  request: string | Buffer,
): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const { port } = new URL(http.base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', reject);
    socket.setTimeout(3000, () => socket.end());
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      // The last answer on the connection is the one about the bad request.
      const start = text.lastIndexOf('HTTP/1.1 ');
      const answer = text.slice(start);
      const [head = '', body = ''] = answer.split('\r\n\r\n');
      const [statusLine = '', ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body });
    });
    socket.write(request);
  });
}

describe('requests refused below the app', () => {
  const cases: [string, string | Buffer, number][] = [
    [
      'a backslash in the path',
      'GET /v1\\customers HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
      400,
    ],
    ['a bad Host header', 'GET /v1/customers HTTP/1.1\r\nHost: a b@c\r\nConnection: close\r\n\r\n', 400],
    ['a DEL in a header', 'GET /v1/customers HTTP/1.1\r\nHost: localhost\r\nX-A: a\x7fb\r\n\r\n', 400],
    [
      'Content-Length shorter than the body',
      'POST /v1/features HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}garbage here\r\n\r\n',
      400,
    ],
    [
      'a 100 kB header',
      `GET /v1/customers HTTP/1.1\r\nHost: localhost\r\nX-Big: ${'a'.repeat(100_000)}\r\n\r\n`,
      431,
    ],
  ];
  it.each(cases)('answers %s with problem+json and a request id', async (_name, request, status) => {
    const res = await raw(request);
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.headers['x-request-id']).toBeTruthy();
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const body = JSON.parse(res.body) as { status: number; code: string; request_id: string };
    expect(body).toMatchObject({ status, request_id: res.headers['x-request-id'] });
    expect(body.code).toEqual(expect.any(String));
  });

  it('answers a bad Host on a fast-path route that is handed to the app', async () => {
    const body = '{"customer_id":"acme\\u0000","feature":"calls"}';
    const res = await raw(
      `POST /v1/check HTTP/1.1\r\nHost: a b@c\r\nAuthorization: Bearer ${app.checkKey}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    expect(res.status).toBe(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
  });
});
