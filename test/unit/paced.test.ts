import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { paced } from '../../load/paced.ts';

let server: Server | undefined;

afterEach(async () => {
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

async function listen(handler: (stall: boolean) => number, keepAliveMs?: number): Promise<string> {
  let n = 0;
  server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const delay = handler(n++ === 20);
      setTimeout(() => res.writeHead(200, { 'content-length': 2 }).end('{}'), delay);
    });
  });
  if (keepAliveMs !== undefined) server.keepAliveTimeout = keepAliveMs;
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}/x`;
}

describe('paced load generator', () => {
  it('sends every request of the schedule, evenly, and answers them all', async () => {
    const url = await listen(() => 0);
    const began = performance.now();
    const r = await paced('t', { url, connections: 4, duration: 1, rate: 200, bodies: ['{}'] });
    const took = performance.now() - began;
    expect(r.total).toBe(200);
    expect(r.errors + r.non2xx).toBe(0);
    // Spread over the second, not sent in a burst at its start.
    expect(took).toBeGreaterThan(900);
    expect(r.p50).toBeLessThan(50);
  });

  it('counts a stall against every request it held up (latency from when each was due)', async () => {
    // One connection: a request answered after 300 ms holds up the ~30 due behind it.
    const url = await listen((stall) => (stall ? 300 : 0));
    const r = await paced('t', { url, connections: 1, duration: 1, rate: 100, bodies: ['{}'] });
    expect(r.total).toBe(100);
    expect(r.max).toBeGreaterThanOrEqual(290);
    // Requests queued behind the stall waited too: well over 1% of them were slow.
    expect(r.p99).toBeGreaterThan(100);
  });

  it('uses its connections in turn and replaces one the server closes', async () => {
    // The server closes a connection idle for 50 ms (node adds a second to that); each of the 4 is
    // used every 2 s.
    let opened = 0;
    const url = await listen(() => 0, 50);
    server!.on('connection', () => {
      opened += 1;
    });
    const r = await paced('t', { url, connections: 4, duration: 3, rate: 2, bodies: ['{}'] });
    expect(r.total).toBe(6);
    expect(r.errors + r.non2xx).toBe(0);
    // In turn: the connections sat idle past the timeout and were replaced.
    expect(opened).toBeGreaterThan(5);
  });
});
