import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { getRequestListener } from '@hono/node-server';
import { checkFastRoute } from './modules/entitlements/check-fast-path.ts';
import { usageFastRoutes } from './modules/metering/usage-fast-path.ts';
import { createFastPath } from './platform/fast-path.ts';
import type { Runtime } from './runtime.ts';

/**
 * The node:http server: the check fast path first (see check-fast-path.ts), the Hono app for
 * everything else. A request the fast path gives up on after reading its body is replayed into
 * the app from the buffered bytes.
 */
export function createHttpServer(runtime: Runtime): Server {
  const appListener = getRequestListener(runtime.app.fetch);
  const replay = (req: IncomingMessage, res: ServerResponse, body?: Buffer) => {
    if (body === undefined) {
      void appListener(req, res);
      return;
    }
    const headers = new Headers();
    for (let i = 0; i < req.rawHeaders.length; i += 2)
      headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
    const request = new Request(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`, {
      method: req.method ?? 'POST',
      headers,
      body: new Uint8Array(body),
    });
    // The node:http objects as bindings, as @hono/node-server passes them: the client's address.
    Promise.resolve(runtime.app.fetch(request, { incoming: req, outgoing: res }))
      .then(async (response) => {
        const payload = Buffer.from(await response.arrayBuffer());
        res.writeHead(response.status, Object.fromEntries(response.headers));
        res.end(payload);
      })
      .catch((err: unknown) => {
        runtime.deps.logger.error({ err }, 'replaying a request into the app failed');
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/problem+json' });
        res.end();
      });
  };
  const fastPath = createFastPath(
    runtime.deps,
    runtime.resolver,
    [checkFastRoute, ...usageFastRoutes],
    replay,
    { brake: runtime.authBrake, trustProxy: runtime.deps.config.trustProxy },
  );
  return createServer((req, res) => {
    if (!fastPath(req, res)) replay(req, res);
  });
}
