import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addressProblem, urlProblem } from '../../src/modules/webhooks/url-rules.ts';
import { ManualClock } from '../../src/platform/clock.ts';
import { createTestApp, type TestApp } from '../helpers/harness.ts';
import { expectAdminOnly } from '../helpers/security.ts';

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
}

/** A receiver on 127.0.0.1 that answers 500 while `failures` is above zero. */
class Receiver {
  received: Received[] = [];
  failures = 0;
  private server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => {
      body += chunk.toString('utf8');
    });
    req.on('end', () => {
      if (this.failures > 0) {
        this.failures -= 1;
        res.statusCode = 500;
        res.end('down');
        return;
      }
      this.received.push({ headers: req.headers, body });
      res.statusCode = 204;
      res.end();
    });
  });
  url = '';
  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }
  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

let app: TestApp;
let clock: ManualClock;
const receivers: Receiver[] = [];

async function receiver(): Promise<Receiver> {
  const r = new Receiver();
  await r.start();
  receivers.push(r);
  return r;
}

async function register(url: string, eventTypes?: string[]) {
  return app.json<{ id: string; url: string; event_types: string[]; secret: string }>(
    'POST',
    '/v1/webhook-endpoints',
    { url, ...(eventTypes ? { event_types: eventTypes } : {}) },
  );
}

/** Hands outbox events to the fan-out, then runs the delivery worker once. */
async function deliver(): Promise<void> {
  await app.runtime.dispatcher.drain();
  await app.runtime.webhooks.drain();
}

beforeAll(async () => {
  // Standard Webhooks verifiers refuse timestamps more than 5 minutes from their own clock.
  clock = new ManualClock(new Date());
  app = await createTestApp({ clock, config: { webhooksAllowLoopback: true } });
  await app.json('POST', '/v1/features', { key: 'sso', name: 'SSO', type: 'boolean' });
  const plan = await app.json('POST', '/v1/plans', {
    key: 'pro',
    name: 'Pro',
    entitlements: [{ feature: 'sso', enabled: true }],
  });
  expect(plan.status, JSON.stringify(plan.body)).toBe(201);
});
afterAll(async () => {
  await app?.close();
  for (const r of receivers) await r.close();
});

describe('registration', () => {
  it('refuses plain http off loopback, private and link-local addresses, naming the field', async () => {
    for (const url of [
      'http://example.com/hook',
      'https://10.1.2.3/hook',
      'https://192.168.1.1/hook',
      'https://169.254.169.254/latest',
      'https://172.16.0.1/hook',
      'https://[fe80::1]/hook',
      'ftp://example.com/hook',
      'not a url',
    ]) {
      const res = await register(url);
      expect(res.status, url).toBe(400);
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(res.body).toMatchObject({ code: 'validation_failed', errors: [{ path: 'url' }] });
    }
    const list = await app.json<{ data: unknown[] }>('GET', '/v1/webhook-endpoints');
    expect(list.body.data).toEqual([]);
  });

  it('accepts loopback only with TESSERA_WEBHOOKS_ALLOW_LOOPBACK', () => {
    expect(urlProblem('http://127.0.0.1:8080/hook', false)).not.toBeNull();
    expect(urlProblem('https://127.0.0.1/hook', false)).not.toBeNull();
    expect(urlProblem('http://localhost/hook', false)).not.toBeNull();
    expect(urlProblem('http://127.0.0.1:8080/hook', true)).toBeNull();
    expect(urlProblem('http://10.0.0.1/hook', true)).not.toBeNull();
    expect(urlProblem('https://hooks.example.com/tessera', false)).toBeNull();
    // What a host name resolves to is checked at delivery, IPv4-mapped IPv6 included.
    expect(addressProblem('::ffff:10.0.0.1', true)).not.toBeNull();
    expect(addressProblem('::ffff:127.0.0.1', false)).not.toBeNull();
    expect(addressProblem('fd00::1', true)).not.toBeNull();
    expect(addressProblem('93.184.216.34', false)).toBeNull();
  });

  it('answers the secret once, not cached, and never again', async () => {
    const res = await register('https://hooks.example.com/tessera', ['subscription.updated']);
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body.secret).toMatch(/^whsec_[A-Za-z0-9+/=]+$/);
    expect(res.body.event_types).toEqual(['subscription.updated']);
    const one = await app.json<Record<string, unknown>>('GET', `/v1/webhook-endpoints/${res.body.id}`);
    expect(one.status).toBe(200);
    expect(one.body).not.toHaveProperty('secret');
    const bad = await app.json('POST', '/v1/webhook-endpoints', {
      url: 'https://hooks.example.com/x',
      event_types: ['nope'],
    });
    expect(bad.status, JSON.stringify(bad.body)).toBe(400);
    expect(bad.body).toMatchObject({ errors: [{ path: 'event_types[0]' }] });
    expect((await app.json('DELETE', `/v1/webhook-endpoints/${res.body.id}`)).status).toBe(200);
    expect((await app.json('GET', `/v1/webhook-endpoints/${res.body.id}`)).status).toBe(404);
  });

  it('is admin only', async () => {
    await expectAdminOnly(app, 'POST', '/v1/webhook-endpoints', { url: 'https://hooks.example.com/a' });
    await expectAdminOnly(app, 'GET', '/v1/webhook-endpoints');
    await expectAdminOnly(app, 'GET', '/v1/webhook-endpoints/whe_x/deliveries');
    await expectAdminOnly(app, 'POST', '/v1/webhook-endpoints/whe_x/deliveries/msg_x/redeliver');
  });
});

describe('delivery', () => {
  it('a subscription change delivers entitlements.updated, verified with standardwebhooks', async () => {
    const r = await receiver();
    const endpoint = await register(r.url, ['entitlements.updated']);
    expect(endpoint.status, JSON.stringify(endpoint.body)).toBe(201);
    expect((await app.json('PUT', '/v1/customers/acme', {})).status).toBe(201);
    expect((await app.json('POST', '/v1/customers/acme/subscriptions', { plan: 'pro' })).status).toBe(201);
    await deliver();
    expect(r.received.length).toBeGreaterThanOrEqual(1);
    const wh = new Webhook(endpoint.body.secret);
    for (const got of r.received) {
      const verified = wh.verify(got.body, got.headers as Record<string, string>) as {
        type: string;
        data: { customer_id: string; version: number };
      };
      expect(verified.type).toBe('entitlements.updated');
      expect(verified.data.customer_id).toBe('acme');
      expect(verified.data.version).toBeGreaterThan(0);
    }
    // A tampered body does not verify.
    const first = r.received[0]!;
    expect(() => wh.verify(`${first.body} `, first.headers as Record<string, string>)).toThrow();

    const log = await app.json<{ data: Array<{ id: string; status: string; attempts: number }> }>(
      'GET',
      `/v1/webhook-endpoints/${endpoint.body.id}/deliveries`,
    );
    expect(log.status).toBe(200);
    expect(log.body.data.map((d) => d.status)).toEqual(r.received.map(() => 'delivered'));
    expect(log.body.data.map((d) => d.id).sort()).toEqual(
      r.received.map((g) => g.headers['webhook-id']).sort(),
    );

    // Redelivery sends the same webhook-id again.
    const id = log.body.data[0]!.id;
    const again = await app.json<{ status: string }>(
      'POST',
      `/v1/webhook-endpoints/${endpoint.body.id}/deliveries/${id}/redeliver`,
    );
    expect(again.status).toBe(200);
    expect(again.body.status).toBe('pending');
    const before = r.received.length;
    await deliver();
    expect(r.received.length).toBe(before + 1);
    expect(r.received.at(-1)!.headers['webhook-id']).toBe(id);
    const missing = await app.json(
      'POST',
      `/v1/webhook-endpoints/${endpoint.body.id}/deliveries/msg_nope/redeliver`,
    );
    expect(missing.status).toBe(404);
    expect((await app.json('DELETE', `/v1/webhook-endpoints/${endpoint.body.id}`)).status).toBe(200);
  });

  it('a receiver failing 5 times then recovering gets every event once per id, in order per customer', async () => {
    const r = await receiver();
    const endpoint = await register(r.url, ['entitlements.updated']);
    expect(endpoint.status).toBe(201);
    r.failures = 5;
    for (const customer of ['c1', 'c2']) {
      expect((await app.json('PUT', `/v1/customers/${customer}`, {})).status).toBe(201);
    }
    // Three entitlement changes per customer, interleaved.
    for (let i = 0; i < 3; i++) {
      for (const customer of ['c1', 'c2']) {
        const res = await app.json('POST', `/v1/customers/${customer}/overrides`, {
          feature: 'sso',
          enabled: i % 2 === 0,
          reason: `change ${i}`,
        });
        expect(res.status, JSON.stringify(res.body)).toBe(201);
      }
    }
    await app.runtime.dispatcher.drain();
    for (let round = 0; round < 40; round++) {
      await app.runtime.webhooks.drain();
      clock.advance(3600_000);
    }
    const events = r.received.map((g) => ({
      id: g.headers['webhook-id'] as string,
      ...(JSON.parse(g.body) as { data: { customer_id: string; version: number } }).data,
    }));
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
    for (const customer of ['c1', 'c2']) {
      const versions = events.filter((e) => e.customer_id === customer).map((e) => e.version);
      expect(versions.length).toBeGreaterThanOrEqual(3);
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
    }
    expect(r.failures).toBe(0);
    const log = await app.json<{ data: Array<{ status: string; attempts: number; last_status: number }> }>(
      'GET',
      `/v1/webhook-endpoints/${endpoint.body.id}/deliveries?limit=200`,
    );
    expect(log.body.data.length).toBe(events.length);
    expect(log.body.data.every((d) => d.status === 'delivered' && d.last_status === 204)).toBe(true);
    expect(Math.max(...log.body.data.map((d) => d.attempts))).toBeGreaterThan(1);
  });

  it('retries for at least 24 hours, then marks the delivery failed', async () => {
    const r = await receiver();
    const endpoint = await register(r.url, ['entitlements.updated']);
    r.failures = 1_000;
    expect((await app.json('PUT', '/v1/customers/gone', {})).status).toBe(201);
    const res = await app.json('POST', '/v1/customers/gone/overrides', {
      feature: 'sso',
      enabled: true,
      reason: 'trial',
    });
    expect(res.status).toBe(201);
    await app.runtime.dispatcher.drain();
    const start = clock.now().getTime();
    const attemptTimes: number[] = [];
    const log = () =>
      app.json<{ data: Array<{ status: string; attempts: number; next_attempt_at: string | null }> }>(
        'GET',
        `/v1/webhook-endpoints/${endpoint.body.id}/deliveries`,
      );
    for (let i = 0; i < 200; i++) {
      const before = r.failures;
      await app.runtime.webhooks.drain();
      if (r.failures < before) attemptTimes.push(clock.now().getTime() - start);
      const rows = (await log()).body.data;
      if (rows.every((d) => d.status !== 'pending')) break;
      clock.advance(15 * 60_000);
    }
    const rows = (await log()).body.data;
    expect(rows.length).toBeGreaterThan(0);
    expect(rows.every((d) => d.status === 'failed')).toBe(true);
    expect(Math.max(...attemptTimes)).toBeGreaterThanOrEqual(24 * 3600_000);
    // Backoff: the gaps grow and never exceed an hour (plus the 15-minute step of this loop).
    const gaps = attemptTimes.slice(1).map((t, i) => t - attemptTimes[i]!);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(3600_000 + 15 * 60_000);
    expect(r.received).toEqual([]);
    r.failures = 0;
  });
});
