import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A small HTTP server on 127.0.0.1 standing in for Stripe's API, for the real `stripe` client to
 * talk to (its `host`, `port` and `protocol: 'http'` options; Tessera's `STRIPE_API_BASE`). Each
 * request is recorded with its form-decoded body; answers come from the handlers a test sets per
 * `METHOD /path` (the path without the query), else a 404 in Stripe's error shape.
 */
export interface StripeRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  /** The form body as Stripe's client sends it (`items[0][price]=...`), flat. */
  form: URLSearchParams;
}

export interface StripeAnswer {
  status?: number;
  body: unknown;
  /** Extra response headers (e.g. `retry-after` on a 429). */
  headers?: Record<string, string>;
}

export type StripeHandler = (request: StripeRequest) => StripeAnswer | Promise<StripeAnswer>;

export interface FakeStripe {
  /** `http://127.0.0.1:<port>`, for STRIPE_API_BASE. */
  url: string;
  requests: StripeRequest[];
  on(route: string, handler: StripeHandler): void;
  close(): Promise<void>;
}

export async function startFakeStripe(): Promise<FakeStripe> {
  const handlers = new Map<string, StripeHandler>();
  const requests: StripeRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const request: StripeRequest = {
        method: req.method ?? 'GET',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        form: new URLSearchParams(Buffer.concat(chunks).toString('utf8')),
      };
      requests.push(request);
      const handler = handlers.get(`${request.method} ${request.path}`);
      const answer: StripeAnswer = handler
        ? await handler(request)
        : {
            status: 404,
            body: {
              error: {
                type: 'invalid_request_error',
                message: `Unrecognized request URL (${request.method}: ${request.path})`,
              },
            },
          };
      const body = JSON.stringify(answer.body);
      res.writeHead(answer.status ?? 200, {
        'content-type': 'application/json',
        'request-id': `req_fake${requests.length}`,
        ...answer.headers,
      });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    on: (route, handler) => handlers.set(route, handler),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
