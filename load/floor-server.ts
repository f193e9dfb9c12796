/**
 * The HTTP part of batch ingestion and nothing else (`npm run bench -- floor`): node:http, the
 * body parsed as JSON, one constant-shaped result per event, the results serialised. No auth, no
 * validation, no Redis: the least any server answering `POST /v1/usage/batch` must do.
 * Any other body (a check, a single event, an admin write: `npm run load` sends its mixed requests
 * here too) is parsed and answered with one constant JSON object.
 */
import http from 'node:http';

const SINGLE = { allowed: true, reason: 'granted', used: 1, limit: 1000, remaining: 999, version: 1 };

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    if (req.url === '/healthz') {
      res.end('{}');
      return;
    }
    const { events } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
      events?: Array<{ value?: number }>;
    };
    if (!Array.isArray(events)) {
      const single = JSON.stringify(SINGLE);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(single) });
      res.end(single);
      return;
    }
    const results = events.map((e) => ({
      accepted: true,
      used: e.value ?? 1,
      limit: 1000,
      remaining: 999,
      resets_at: '2027-01-01T00:00:00.000Z',
      period_start: '2026-12-01T00:00:00.000Z',
      overage: 0,
      credit_used: 0,
    }));
    const body = JSON.stringify({ results });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => process.stdout.write('listening\n'));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
