/**
 * `npm run bench -- floor`: what batch ingestion costs on this machine at the least, piece by
 * piece, whatever the implementation: CPU per event of
 * - HTTP and JSON: a node:http server that parses `{events: [...]}` and answers a result per event
 *   (load/floor-server.ts), and the load generator sending it batches of 100;
 * - Redis: the two writes exactly-once counting cannot do without (claim the idempotency key,
 *   add to the counter), 100 events per script call, and the client's side of those calls;
 * - the ledger: PostgreSQL writing the rows of `usage_events` (the real table, migrated), as the
 *   flusher writes them on PostgreSQL (COPY, ledger/copy.ts) and by the insert it falls back on.
 * Their sum is a floor per event; the machine's cores divided by it is a ceiling on events per
 * second for any design that counts in Redis and keeps a row per event in PostgreSQL, before
 * scheduling, garbage collection and everything a real server does besides.
 *
 * CPU is read from /proc for local processes (the servers this starts, PostgreSQL's processes,
 * this process) and from Redis's INFO for Redis, so it needs PostgreSQL on this
 * machine; the ledger rows are left out, and said so, when it is elsewhere.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { Redis } from 'ioredis';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import { LedgerCopier } from '../src/modules/metering/ledger/copy.ts';
import { appendToLedger } from '../src/modules/metering/ledger/ledger.ts';
import type { LedgerRow } from '../src/modules/metering/ledger/row.ts';
import type { DB } from '../src/platform/db-types.ts';
import { migrateToLatest } from '../src/platform/migrate.ts';
import type { BenchSettings } from './check-bench.ts';
import { cpuOfPid, cpuOfTree, ownCpu, redisCpu } from './cpu.ts';
import { deletePrefix, drive, startProcess, stopProcess } from './lib.ts';

const BATCH = 100;
const PREFIX = 'tessera-bench-floor:';

/** CPU of the local PostgreSQL in µs (see `cpuOfTree`), or null when it is not local. */
async function postgresCpuReader(databaseUrl: string): Promise<(() => number) | null> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const dir = (await client.query<{ data_directory: string }>('SHOW data_directory')).rows[0]
      ?.data_directory;
    const postmaster = Number(readFileSync(`${dir}/postmaster.pid`, 'utf8').split('\n')[0]);
    cpuOfTree(postmaster);
    return () => cpuOfTree(postmaster);
  } catch {
    return null;
  } finally {
    await client.end();
  }
}

interface Piece {
  piece: string;
  where: string;
  micros: number;
  rate: number;
}

export async function runFloorBench(s: BenchSettings): Promise<string> {
  const seconds = Math.min(10, s.duration);
  const pieces: Piece[] = [];
  pieces.push(...(await httpFloor(s, seconds)));
  pieces.push(...(await redisFloor(s, seconds)));
  const ledger = await ledgerFloor(s);
  pieces.push(...ledger.pieces);

  const byName = (name: string) => pieces.find((p) => p.piece === name)?.micros ?? 0;
  // PostgreSQL's side only: how a client encodes the rows is the implementation's (Tessera's
  // writers are in the table, not in the floor), so the floor stays a lower bound.
  const ledgerCheapest = Math.min(
    byName('ledger rows by insert') || Number.POSITIVE_INFINITY,
    byName('ledger rows through COPY') || Number.POSITIVE_INFINITY,
  );
  const withoutLedger =
    byName('HTTP + JSON, 100 events a request') +
    byName('load generator') +
    byName('Redis: idempotency key + counter') +
    byName('Redis client side');
  const cores = os.cpus().length;
  const total = withoutLedger + (Number.isFinite(ledgerCheapest) ? ledgerCheapest : 0);
  const rows = pieces.map(
    (p) =>
      `| ${p.piece} | ${p.where} | ${p.micros.toFixed(1)} | ${Math.round(p.rate).toLocaleString('en')} |`,
  );
  return [
    `## Floor of batch ingestion (${new Date().toISOString()})`,
    '',
    `Machine: ${cores} cores (${os.cpus()[0]?.model ?? 'unknown'}), Node ${process.version}. Each piece alone, ${seconds} s (the ledger: ${ledger.rows.toLocaleString('en')} rows each way), CPU per event from /proc (Redis: INFO cpu). No CPU pinning.`,
    '',
    '| piece | CPU of | µs per event | events/s in the run |',
    '|---|---|---:|---:|',
    ...rows,
    '',
    `Floor per event: ${withoutLedger.toFixed(1)} µs without the ledger, ${total.toFixed(1)} µs with PostgreSQL's side of its cheaper way in (the writers' side not counted)${ledger.note ?? ''}. On ${cores} cores fully used that is at most **${Math.round((cores * 1e6) / total).toLocaleString('en')} events/s** with a ledger row per event (${Math.round((cores * 1e6) / withoutLedger).toLocaleString('en')} events/s without), before anything a real server does besides (auth, validation, terms, limits, credits, thresholds, answers, scheduling, garbage collection). Metering target: 50,000 events/s.`,
  ].join('\n');
}

function batchBody(run: string, customers: number): () => string {
  let n = 0;
  return () =>
    JSON.stringify({
      events: Array.from({ length: BATCH }, () => ({
        customer_id: `cust-${Math.floor(Math.random() * customers)}`,
        feature: 'api_calls',
        value: 1,
        idempotency_key: `${run}-${n++}`,
      })),
    });
}

async function httpFloor(s: BenchSettings, seconds: number): Promise<Piece[]> {
  const port = 3721;
  const server = await startProcess(['load/floor-server.ts'], {}, port);
  try {
    const body = batchBody(randomBytes(4).toString('hex'), s.customers);
    const url = `http://127.0.0.1:${port}/batch`;
    await drive('warm-up', { url, connections: s.connections, duration: 2, body });
    const server0 = cpuOfPid(server.pid!);
    const client0 = ownCpu();
    const run = await drive('floor', { url, connections: s.connections, duration: seconds, body });
    const events = run.total * BATCH;
    const rate = run.requestsPerSecond * BATCH;
    return [
      {
        piece: 'HTTP + JSON, 100 events a request',
        where: 'node:http server',
        micros: (cpuOfPid(server.pid!) - server0) / events,
        rate,
      },
      {
        piece: 'load generator',
        where: 'autocannon (this process)',
        micros: (ownCpu() - client0) / events,
        rate,
      },
    ];
  } finally {
    await stopProcess(server);
  }
}

/** Per event: SET NX of the idempotency key with the answer, then HINCRBY of the counter if new. */
const LEAST_CONSUME = `
for i = 1, #KEYS, 2 do
  if redis.call('SET', KEYS[i], ARGV[1], 'NX', 'PX', ARGV[2]) then
    redis.call('HINCRBY', KEYS[i + 1], 'u', 1)
  end
end
return #KEYS / 2`;

async function redisFloor(s: BenchSettings, seconds: number): Promise<Piece[]> {
  const redis = new Redis(s.redisUrl);
  try {
    const sha = String(await redis.script('LOAD', LEAST_CONSUME));
    const run = randomBytes(4).toString('hex');
    const answer = '1|1|1000|999|1798761600000|1796083200000|0|0';
    let n = 0;
    const until = Date.now() + seconds * 1000;
    const redis0 = await redisCpu(redis);
    const client0 = ownCpu();
    const began = Date.now();
    const worker = async () => {
      while (Date.now() < until) {
        const keys: string[] = [];
        for (let i = 0; i < BATCH; i++) {
          const base = `${PREFIX}u:{test:cust-${Math.floor(Math.random() * s.customers)}}:`;
          keys.push(`${base}i:${run}-${n++}`, `${base}c:api_calls:1796083200000`);
        }
        await redis.evalsha(sha, keys.length, ...keys, answer, 8 * 86_400_000);
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const elapsed = (Date.now() - began) / 1000;
    const redisMicros = (await redisCpu(redis)) - redis0;
    const clientMicros = ownCpu() - client0;
    await deletePrefix(redis, PREFIX);
    return [
      {
        piece: 'Redis: idempotency key + counter',
        where: 'redis-server',
        micros: redisMicros / n,
        rate: n / elapsed,
      },
      {
        piece: 'Redis client side',
        where: 'ioredis (this process)',
        micros: clientMicros / n,
        rate: n / elapsed,
      },
    ];
  } finally {
    redis.disconnect();
  }
}

const LEDGER_ROWS = 200_000;
function ledgerRows(run: string, customers: number, count: number): LedgerRow[] {
  const periodStart = new Date(Date.UTC(2026, 11, 1));
  const periodEnd = new Date(Date.UTC(2027, 0, 1));
  return Array.from({ length: count }, (_, i) => ({
    environment: 'test',
    customerId: `cust-${Math.floor(Math.random() * customers)}`,
    feature: 'api_calls',
    idempotencyKey: `${run}-${i}`,
    value: 1,
    counted: 1,
    member: null,
    occurredAt: new Date(),
    periodStart,
    periodEnd,
    overage: 0,
    creditDraws: {},
    answer: {
      accepted: true,
      used: i,
      limit: 1000,
      remaining: 1000 - i,
      resets_at: periodEnd.toISOString(),
      period_start: periodStart.toISOString(),
      overage: 0,
      credit_used: 0,
    },
    reservationId: null,
    crossings: [],
  }));
}

async function ledgerFloor(s: BenchSettings): Promise<{ pieces: Piece[]; rows: number; note?: string }> {
  const name = 'tessera_bench_floor';
  const admin = new pg.Client({ connectionString: s.pgAdminUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(s.pgAdminUrl);
  url.pathname = `/${name}`;
  const databaseUrl = url.toString();
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
  const db = new Kysely<DB>({ dialect: new PostgresDialect({ pool }) });
  try {
    await migrateToLatest(db);
    const postgresCpu = await postgresCpuReader(databaseUrl);
    if (postgresCpu === null)
      return { pieces: [], rows: 0, note: ' (the ledger is left out: PostgreSQL is not on this machine)' };
    const pieces: Piece[] = [];
    // The insert (the flusher's way on the embedded database, and when a batch meets a duplicate),
    // then COPY, as the flusher writes on PostgreSQL (ledger/copy.ts).
    const ways: Array<[string, LedgerCopier | null]> = [
      ['by insert', null],
      ['through COPY', new LedgerCopier(pool)],
    ];
    for (const [way, copier] of ways) {
      const rows = ledgerRows(randomBytes(4).toString('hex'), s.customers, LEDGER_ROWS);
      const cost = await perRow(rows.length, postgresCpu, async () => {
        for (let i = 0; i < rows.length; i += 20_000)
          await appendToLedger(db, rows.slice(i, i + 20_000), copier);
      });
      pieces.push(
        { piece: `ledger rows ${way}`, where: 'PostgreSQL', micros: cost.postgres, rate: cost.rate },
        {
          piece: `writer side, ${way}`,
          where: 'pg client (this process)',
          micros: cost.writer,
          rate: cost.rate,
        },
      );
    }
    return { pieces, rows: LEDGER_ROWS };
  } finally {
    await db.destroy();
    const cleanup = new pg.Client({ connectionString: s.pgAdminUrl });
    await cleanup.connect();
    await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await cleanup.end();
  }
}

interface RowCost {
  postgres: number;
  writer: number;
  rate: number;
}

/** Runs `write` and answers CPU per row of PostgreSQL and of this process, and rows per second. */
async function perRow(
  count: number,
  postgresCpu: () => number,
  write: () => Promise<void>,
): Promise<RowCost> {
  const postgres0 = postgresCpu();
  const writer0 = ownCpu();
  const began = Date.now();
  await write();
  const rate = count / ((Date.now() - began) / 1000);
  return { postgres: (postgresCpu() - postgres0) / count, writer: (ownCpu() - writer0) / count, rate };
}
