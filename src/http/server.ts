import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { getRequestListener, RequestError } from '@hono/node-server';
import { usageFastRoutes } from '../modules/metering/usage-fast-path.ts';
import { problem } from '../platform/errors.ts';
import { createFastPath } from '../platform/fast-path.ts';
import { requestIdFactory } from '../platform/ids.ts';
import type { Runtime } from '../runtime.ts';
import { checkFastRoute } from './check-fast-path.ts';

/**
 * The node:http server: the check fast path first (see check-fast-path.ts), the Hono app for
 * everything else. A request the fast path gives up on after reading its body is replayed into
 * the app from the buffered bytes. Requests refused before the app can see them (node:http's
 * parser errors, a path or Host header no URL can be built from) are answered with problem+json
 * and an `x-request-id` too.
 */
export function createHttpServer(runtime: Runtime): Server {
  const nextRequestId = requestIdFactory();
  const refusal = (status: number, code: string, detail: string) => {
    const requestId = nextRequestId();
    const doc = problem(status, code, detail, requestId);
    const body = JSON.stringify(doc);
    return { requestId, title: doc.title, body, length: Buffer.byteLength(body) };
  };
  const answer = (status: number, code: string, detail: string) => {
    const { requestId, body } = refusal(status, code, detail);
    return new Response(body, {
      status,
      headers: {
        'content-type': 'application/problem+json',
        'x-request-id': requestId,
        'x-content-type-options': 'nosniff',
      },
    });
  };
  const badRequest = (detail: string) => answer(400, 'bad_request', detail);
  const appListener = getRequestListener(runtime.app.fetch, {
    // A RequestError: no Request could be built (a backslash in the path, a bad Host header).
    errorHandler: (err) => {
      if (err instanceof RequestError) return badRequest(err.message);
      runtime.deps.logger.error({ err }, 'request failed before the app answered');
      return answer(500, 'internal_error', 'An unexpected error occurred; it has been logged');
    },
  });
  const replay = (req: IncomingMessage, res: ServerResponse, body?: Buffer) => {
    if (body === undefined) {
      void appListener(req, res);
      return;
    }
    let request: Request;
    try {
      const headers = new Headers();
      for (let i = 0; i < req.rawHeaders.length; i += 2)
        headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
      request = new Request(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`, {
        method: req.method ?? 'POST',
        headers,
        body: new Uint8Array(body),
      });
    } catch {
      void send(res, badRequest('The Host header or the path is not valid'));
      return;
    }
    // The node:http objects as bindings, as @hono/node-server passes them: the client's address.
    Promise.resolve(runtime.app.fetch(request, { incoming: req, outgoing: res }))
      .then((response) => send(res, response))
      .catch((err: unknown) => {
        runtime.deps.logger.error({ err }, 'replaying a request into the app failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/problem+json' });
        res.end();
      });
  };
  // TESSERA_FAST_PATH=false: every request goes through the app (the benchmark compares the two).
  const fastPath = runtime.deps.config.fastPath
    ? createFastPath(runtime.deps, runtime.resolver, [checkFastRoute, ...usageFastRoutes], replay, {
        brake: runtime.authBrake,
        trustProxy: runtime.deps.config.trustProxy,
        limiter: runtime.rateLimiter,
      })
    : null;
  const server: Server & { [DRAINING]?: boolean } = createServer((req, res) => {
    // Shutting down: answered, then the connection closes (`Connection: close`).
    if (server[DRAINING]) res.shouldKeepAlive = false;
    if (fastPath === null || !fastPath(req, res)) replay(req, res);
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, code, detail] = clientErrorAnswer(err.code);
    const { requestId, title, body, length } = refusal(status, code, detail);
    const reply =
      `HTTP/1.1 ${status} ${title}\r\ncontent-type: application/problem+json\r\n` +
      `content-length: ${length}\r\nx-request-id: ${requestId}\r\nx-content-type-options: nosniff\r\n` +
      `connection: close\r\n\r\n${body}`;
    // A request read before the bad bytes (a body longer than its Content-Length) is answered
    // first; node:http keeps the response in progress on the socket.
    const inFlight = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
    if (inFlight && !inFlight.writableFinished) inFlight.once('finish', () => socket.end(reply));
    else socket.end(reply);
  });
  return server;
}

const DRAINING = Symbol('draining');

/**
 * Stops the server the way SIGTERM asks: it stops listening at once (new connections are
 * refused), answers every request it has received, and tells keep-alive clients to go
 * (`Connection: close` on every answer from now on; node:http would otherwise keep serving them).
 * A connection closes once it has no request in progress. After `graceMs`, whatever is left is
 * closed (`onForced` is told first). Resolves when the last connection has closed.
 */
export function closeGracefully(server: Server, graceMs: number, onForced: () => void): Promise<void> {
  (server as Server & { [DRAINING]?: boolean })[DRAINING] = true;
  return new Promise((resolve) => {
    const forced = setTimeout(() => {
      onForced();
      server.closeAllConnections();
    }, graceMs);
    // Requests in progress now were taken before the drain began and answered keep-alive: their
    // connections close as soon as they fall idle.
    const sweep = setInterval(() => server.closeIdleConnections(), 50);
    server.close(() => {
      clearTimeout(forced);
      clearInterval(sweep);
      resolve();
    });
    server.closeIdleConnections();
  });
}

async function send(res: ServerResponse, response: Response): Promise<void> {
  const payload = Buffer.from(await response.arrayBuffer());
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(payload);
}

/** node:http parser errors as problems: sizes are 431/413, a slow client 408, the rest 400. */
function clientErrorAnswer(code: string | undefined): [number, string, string] {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'request_header_fields_too_large', 'The request headers are too large'];
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [413, 'payload_too_large', 'The chunk extensions are too large'];
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'request_timeout', 'The request took too long to arrive'];
    default:
      return [400, 'bad_request', `The request could not be parsed (${code ?? 'unknown error'})`];
  }
}
