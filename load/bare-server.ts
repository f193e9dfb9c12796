import { serve } from '@hono/node-server';
import { Hono } from 'hono';

/** The baseline: the same framework and server, a route that returns a constant JSON. */
const app = new Hono();
const body = { allowed: true, reason: 'granted' };
app.post('/bare', (c) => c.json(body));
app.get('/healthz', (c) => c.json({ status: 'ok' }));
const server = serve(
  { fetch: app.fetch, port: Number(process.env.PORT ?? 0), hostname: '127.0.0.1' },
  (info) => {
    process.stdout.write(`listening ${info.port}\n`);
  },
);
process.on('SIGTERM', () => server.close(() => process.exit(0)));
