/**
 * An open-loop load generator: requests are due at evenly spaced instants (`rate` per second over
 * the run) and go out on a fixed set of keep-alive connections; a request due while every
 * connection is busy waits for the next free one. Latency is measured from the instant a request
 * was due, not from when it could be sent, so a stall counts for every request it held up
 * (no coordinated omission). Free connections are used in turn (oldest free first), so none sits
 * idle long enough for the server's keep-alive timeout to close it; one the server closes anyway
 * is replaced, and a request it was carrying counts as an error.
 *
 * Why not autocannon's `overallRate`: autocannon lets each connection send its quota for the
 * second as fast as it is answered and then pauses it until the next one-second tick, so the load
 * arrives as a burst at full speed at the start of every second and its latency figures at a
 * "fixed rate" are those of a saturated server.
 */
import net from 'node:net';
import { percentiles, type RunResult } from './lib.ts';

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
  /** Instead of `bodies`: the whole raw HTTP request number i (any method and path), made as it is sent. */
  request?: (i: number) => Buffer;
  /** Called with each answer: request number, status (0: no answer) and latency in ms. */
  onAnswer?: (i: number, status: number, ms: number) => void;
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
  const requests = (options.request ? [] : options.bodies).map((body) =>
    Buffer.from(`${head}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`),
  );
  const total = Math.floor(options.rate * options.duration);
  const latencies = new Float64Array(total);
  let answered = 0;
  let errors = 0;
  let non2xx = 0;
  let sent = 0;
  const backlog: number[] = [];
  // Free connections, oldest first.
  const idle: Connection[] = [];
  const connections = new Set<Connection>();
  let stopped = false;
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
    private open = false;

    constructor(ready: () => void) {
      connections.add(this);
      this.socket = net.connect(port, url.hostname, () => {
        this.open = true;
        ready();
      });
      this.socket.setNoDelay(true);
      this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
      this.socket.on('error', () => this.fail());
      this.socket.on('close', () => this.closed());
    }

    send(i: number): void {
      this.current = i;
      this.socket.write(options.request ? options.request(i) : requests[i % requests.length]!);
    }

    close(): void {
      this.socket.destroy();
    }

    /** The request in flight, if any, is an error; the connection takes no more. */
    private fail(): void {
      if (this.current >= 0) settle(this.current, 0, true);
      this.current = -1;
    }

    /**
     * Closed (by either side, or on an error): a new connection takes its place in the run, unless
     * this one never opened (the server is not there: the run's deadline ends it).
     */
    private closed(): void {
      this.fail();
      connections.delete(this);
      const free = idle.indexOf(this);
      if (free >= 0) idle.splice(free, 1);
      if (stopped || !this.open) return;
      const replacement = new Connection(() => next(replacement));
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
    const ms = performance.now() - dueAt(i);
    latencies[answered++] = ms;
    options.onAnswer?.(i, failed ? 0 : status, ms);
    if (answered === total) finish();
  }

  function next(connection: Connection): void {
    const waiting = backlog.shift();
    if (waiting !== undefined) connection.send(waiting);
    else idle.push(connection);
  }

  const opened = await Promise.all(
    Array.from(
      { length: options.connections },
      () =>
        new Promise<Connection>((resolve) => {
          const c: Connection = new Connection(() => resolve(c));
        }),
    ),
  );
  idle.push(...opened);
  started = performance.now();

  // The schedule is looked at on every turn of the event loop (a timer would release requests in
  // bunches of a millisecond's worth): the generator keeps its core busy, which is why it runs
  // pinned to a core of its own.
  const tick = () => {
    const now = performance.now();
    while (sent < total && dueAt(sent) <= now) {
      const connection = idle.shift();
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

  return {
    name,
    requestsPerSecond: answered / options.duration,
    ...percentiles(latencies.subarray(0, answered)),
    errors,
    non2xx,
    total: answered,
  };
}
