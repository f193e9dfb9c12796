import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMIN,
  CUSTOMERS,
  type Deployment,
  deploy,
  faultToolsMissing,
  OVER,
  sleep,
  trace,
  until,
} from './cluster.ts';
import { settled } from './ledger.ts';
import { newAnswers } from './load.ts';

/**
 * SIGTERM to an API process under load: requests it has already received are answered in full
 * (here some whose body is still arriving when the signal comes), none is reset; it stops
 * listening at once, so new connections are refused (a load balancer moves on); then it exits 0.
 * Every event it answered accepted reaches the ledger once, through the worker that keeps running.
 */
describe.skipIf(faultToolsMissing() !== null)('SIGTERM to an API process under load', () => {
  let d: Deployment;
  beforeAll(async () => {
    d = await deploy();
  });
  afterAll(async () => {
    await d?.cluster.close();
  });

  /** A raw HTTP request whose body is sent in two halves; resolves to the whole raw response. */
  function halfSent(port: number, key: string) {
    const body = JSON.stringify({
      events: CUSTOMERS.map((c, i) => ({
        customer_id: c,
        feature: 'calls',
        value: 1,
        idempotency_key: `${key}-${i}`,
      })),
    });
    const head =
      `POST /v1/usage/batch HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\nauthorization: Bearer ${ADMIN}\r\n` +
      `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n`;
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    const response = new Promise<string>((resolve, reject) => {
      socket.on('data', (chunk) => {
        received += chunk.toString();
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(received));
    });
    const sentHead = new Promise<void>((r) =>
      socket.once('connect', () => socket.write(head + body.slice(0, 40), () => r())),
    );
    return {
      keys: CUSTOMERS.map((_, i) => `${key}-${i}`),
      sentHead,
      finish: () => socket.write(body.slice(40)),
      response,
    };
  }

  it('answers the requests it has received, refuses new connections, exits 0, loses no accepted event', async () => {
    const { server, worker, cluster } = d;
    const port = Number(new URL(server.base).port);
    const answers = newAnswers();
    // Keep-alive clients: each request's start, and how it ended.
    const outcomes: Array<{ started: number; ended: number; status: number | string }> = [];
    let running = true;
    let n = 0;
    const client = async () => {
      while (running) {
        const started = Date.now();
        const events = Array.from({ length: 10 }, (_, i) => ({
          customer_id: i === 0 ? OVER : CUSTOMERS[n % CUSTOMERS.length]!,
          feature: 'calls',
          value: 1,
          idempotency_key: `t-${n++}`,
        }));
        try {
          const res = await fetch(`${server.base}/v1/usage/batch`, {
            method: 'POST',
            headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
            body: JSON.stringify({ events }),
          });
          const body = (await res.json()) as { results: Array<{ accepted: boolean }> };
          outcomes.push({ started, ended: Date.now(), status: res.status });
          if (res.status === 200)
            body.results.forEach((r, i) => {
              if (r.accepted) answers.accepted.set(events[i]!.idempotency_key, { value: 1, at: Date.now() });
            });
        } catch (err) {
          const cause = (err as Error).cause as { code?: string } | undefined;
          outcomes.push({ started, ended: Date.now(), status: cause?.code ?? String(err) });
          if (cause?.code === 'ECONNREFUSED') return; // the server has stopped listening
        }
        await sleep(2);
      }
    };
    const clients = Array.from({ length: 4 }, client);
    await sleep(1_500);

    const inFlight = Array.from({ length: 5 }, (_, i) => halfSent(port, `inflight-${i}`));
    await Promise.all(inFlight.map((r) => r.sentHead));
    await sleep(200); // received: the server is reading their bodies
    const signalledAt = Date.now();
    server.child.kill('SIGTERM');
    trace('SIGTERM');
    await sleep(300);

    // Not listening any more: a new connection is refused.
    const refused = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');

    // The requests received before the signal are answered in full once their bodies arrive.
    for (const r of inFlight) r.finish();
    const responses = await Promise.all(inFlight.map((r) => r.response));
    for (const [i, raw] of responses.entries()) {
      expect(raw, raw).toMatch(/^HTTP\/1\.1 200 /);
      const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as {
        results: Array<{ accepted: boolean }>;
      };
      expect(body.results.map((r) => r.accepted)).toEqual(CUSTOMERS.map(() => true));
      for (const key of inFlight[i]!.keys) answers.accepted.set(key, { value: 1, at: Date.now() });
    }

    // Keep-alive clients were told to go (`Connection: close`): the drain ends well before the
    // 10 s grace, without closing any connection under a request.
    await until('the server to exit', async () => !server.alive(), 15_000);
    const exitedAfter = Date.now() - signalledAt;
    expect(server.child.exitCode, server.output()).toBe(0);
    expect(server.output()).not.toContain('drain timed out');
    expect(exitedAfter).toBeLessThan(8_000);
    running = false;
    await Promise.all(clients);
    trace('server exited');

    // No request that reached the server failed: only those started about the moment of the
    // signal (a keep-alive request crossing the server's close of its idle connection) or after.
    const failed = outcomes.filter((o) => typeof o.status === 'string' && o.started < signalledAt - 200);
    expect(failed, JSON.stringify(failed)).toEqual([]);
    expect(outcomes.filter((o) => o.status !== 200 && typeof o.status === 'number')).toEqual([]);
    expect(outcomes.filter((o) => o.status === 200).length).toBeGreaterThan(50);

    const count = await settled(cluster, answers, '');
    expect(count.missing).toEqual([]);
    expect(count.twice).toEqual([]);
    expect(worker.alive()).toBe(true);
  });
});
