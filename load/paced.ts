/**
 * An open-loop load generator: requests are due at evenly spaced instants (`rate` per second over
 * the run) and go out on a fixed set of keep-alive connections; a request due while every
 * connection is busy waits for the next free one. Latency is measured from the instant a request
 * was due, not from when it could be sent, so a stall counts for every request it held up
 * (no coordinated omission).
 *
 * Why not autocannon's `overallRate`: autocannon lets each connection send its quota for the
 * second as fast as it is answered and then pauses it until the next one-second tick, so the load
 * arrives as a burst at full speed at the start of every second and its latency figures at a
 * "fixed rate" are those of a saturated server.
 */
import net from 'node:net';
import type { RunResult } from './lib.ts';

export interface PacedOptions {
  url: string;
  connections: number;
  /** Seconds. */
  duration: number;
  /** Requests per second over all connections. */
  rate: number;
  /** Request bodies, sent in turn. */
  bodies: string[];
  key?: string;
}

export async function paced(name: string, options: PacedOptions): Promise<RunResult> {
  const url = new URL(options.url);
  const port = Number(url.port);
  const head = [
    `POST ${url.pathname} HTTP/1.1`,
    `Host: ${url.host}`,
    'Content-Type: application/json',
    ...(options.key ? [`Authorization: Bearer ${options.key}`] : []),
  ].join('\r\n');
  const requests = options.bodies.map((body) =>
    Buffer.from(`${head}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`),
  );
  const total = Math.floor(options.rate * options.duration);
  const latencies = new Float64Array(total);
  let answered = 0;
  let errors = 0;
  let non2xx = 0;
  let sent = 0;
  const backlog: number[] = [];
  const idle: Connection[] = [];
  // Set once every connection is open: connecting is not part of any request's latency.
  let started = 0;
  const dueAt = (i: number) => started + (i * 1000) / options.rate;

  let finish!: () => void;
  const done = new Promise<void>((resolve) => {
    finish = resolve;
  });

  class Connection {
    private readonly socket: net.Socket;
    private buffer: Buffer = Buffer.alloc(0);
    private current = -1;

    constructor(ready: () => void) {
      this.socket = net.connect(port, url.hostname, ready);
      this.socket.setNoDelay(true);
      this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
      this.socket.on('error', () => this.fail());
    }

    send(i: number): void {
      this.current = i;
      this.socket.write(requests[i % requests.length]!);
    }

    close(): void {
      this.socket.destroy();
    }

    /** The request in flight, if any, is an error; the connection takes no more. */
    private fail(): void {
      if (this.current >= 0) settle(this.current, 0, true);
      this.current = -1;
    }

    private onData(chunk: Buffer): void {
      this.buffer = this.buffer.length === 0 ? chunk : Buffer.concat([this.buffer, chunk]);
      const end = this.buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const headers = this.buffer.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(headers)?.[1] ?? Number.NaN);
      if (!Number.isFinite(length)) {
        // Every server measured here answers with a length; anything else is an error.
        this.fail();
        this.socket.destroy();
        return;
      }
      if (this.buffer.length < end + 4 + length) return;
      this.buffer = this.buffer.subarray(end + 4 + length);
      const status = Number(headers.slice(9, 12));
      const i = this.current;
      this.current = -1;
      settle(i, status, false);
      next(this);
    }
  }

  function settle(i: number, status: number, failed: boolean): void {
    if (failed) errors += 1;
    else if (status < 200 || status >= 300) non2xx += 1;
    latencies[answered++] = performance.now() - dueAt(i);
    if (answered === total) finish();
  }

  function next(connection: Connection): void {
    const waiting = backlog.shift();
    if (waiting !== undefined) connection.send(waiting);
    else idle.push(connection);
  }

  const connections: Connection[] = [];
  await Promise.all(
    Array.from(
      { length: options.connections },
      () =>
        new Promise<void>((resolve) => {
          const c = new Connection(resolve);
          connections.push(c);
        }),
    ),
  );
  idle.push(...connections);
  started = performance.now();

  // The schedule is looked at on every turn of the event loop (a timer would release requests in
  // bunches of a millisecond's worth): the generator keeps its core busy, which is why it runs
  // pinned to a core of its own.
  let stopped = false;
  const tick = () => {
    const now = performance.now();
    while (sent < total && dueAt(sent) <= now) {
      const connection = idle.pop();
      if (connection) connection.send(sent);
      else backlog.push(sent);
      sent += 1;
    }
    if (sent < total && !stopped) setImmediate(tick);
  };
  setImmediate(tick);
  // Answers still missing 10 s after the last request was due are errors.
  const deadline = setTimeout(
    () => {
      errors += total - answered;
      finish();
    },
    options.duration * 1000 + 10_000,
  );
  await done;
  clearTimeout(deadline);
  stopped = true;
  for (const c of connections) c.close();

  const measured = latencies.subarray(0, answered).sort();
  const at = (q: number) => measured[Math.min(measured.length - 1, Math.floor(q * measured.length))] ?? 0;
  const round = (ms: number) => Math.round(ms * 100) / 100;
  return {
    name,
    requestsPerSecond: answered / options.duration,
    p50: round(at(0.5)),
    p99: round(at(0.99)),
    max: round(measured[measured.length - 1] ?? 0),
    errors,
    non2xx,
    total: answered,
  };
}
