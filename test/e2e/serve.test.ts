import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, waitUntilUp } from '../helpers/processes.ts';

/**
 * The shipped binary, as a user runs it: the production build (`npm run build`, compiled
 * JavaScript run by plain node, no tsx), `tessera serve` on the embedded database with
 * TESSERA_ADMIN_KEY set, the README's tour, the CLI, and a graceful SIGTERM.
 */
const run = promisify(execFile);
const dataDir = mkdtempSync(path.join(tmpdir(), 'tessera-e2e-'));
// Inside the project, so the compiled files find node_modules as dist/ does.
const buildDir = path.resolve('.scratch', `e2e-build-${process.pid}`);
const main = path.join(buildDir, 'src', 'main.js');
const tessera = (...args: string[]) => [main, ...args];
const ADMIN = 'sk_test_e2eAdminKey0123456789ab';
const PORT = await freePort();
const base = `http://127.0.0.1:${PORT}`;
const env = {
  ...process.env,
  TESSERA_DATA_DIR: dataDir,
  TESSERA_ADMIN_KEY: ADMIN,
  PORT: String(PORT),
  HOST: '127.0.0.1',
  LOG_LEVEL: 'warn',
  DATABASE_URL: '',
  REDIS_URL: '',
};
let server: ChildProcess;
let output = '';

const call = async (method: string, p: string, body?: unknown) => {
  const res = await fetch(`${base}${p}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

beforeAll(async () => {
  // The build script's own compiler settings, into a folder of this test's.
  await run(process.execPath, [
    'node_modules/typescript/bin/tsc',
    '-p',
    'tsconfig.build.json',
    '--outDir',
    buildDir,
  ]);
  server = spawn(process.execPath, tessera('serve'), {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stdout?.on('data', (d) => {
    output += d;
  });
  server.stderr?.on('data', (d) => {
    output += d;
  });
  await waitUntilUp(base, () => output);
}, 90_000);

afterAll(async () => {
  if (server.exitCode === null) server.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(buildDir, { recursive: true, force: true });
});

describe('tessera serve (embedded database)', () => {
  it('runs from compiled JavaScript, with no TypeScript loader', async () => {
    expect(output).not.toContain('tsx');
    const served = await fetch(`${base}/healthz`);
    expect(served.status).toBe(200);
    // The migrations it applied were the compiled ones.
    const migrated = await run(process.execPath, tessera('migrate'), { env });
    expect(migrated.stdout).toContain('nothing to do');
  });

  it('serves health, the OpenAPI document and the docs page', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const doc = (await (await fetch(`${base}/openapi.json`)).json()) as { openapi: string };
    expect(doc.openapi).toBe('3.1.0');
    const docs = await fetch(`${base}/docs`);
    expect(docs.headers.get('content-type')).toContain('text/html');
  });

  it('runs the README tour', async () => {
    expect(
      (await call('POST', '/v1/features', { key: 'sso', name: 'Single sign-on', type: 'boolean' })).status,
    ).toBe(201);
    expect(
      (
        await call('POST', '/v1/features', {
          key: 'api_calls',
          name: 'API calls',
          type: 'metered',
          unit: 'call',
        })
      ).status,
    ).toBe(201);
    const plan = await call('POST', '/v1/plans', {
      key: 'pro',
      name: 'Pro',
      trial: { days: 14, on_end: 'convert' },
      entitlements: [
        { feature: 'sso', enabled: true },
        { feature: 'api_calls', limit: 10000, reset: 'month', overage: 'deny', notify_at_percent: [80, 100] },
      ],
    });
    expect(plan).toMatchObject({ status: 201, body: { version: 1 } });
    expect(
      (await call('PUT', '/v1/customers/acme', { name: 'Acme Inc', attributes: { region: 'eu' } })).status,
    ).toBe(201);
    const verify = await call('GET', '/v1/audit-events/verify');
    expect(verify.body).toMatchObject({ ok: true });
  });

  it('stops gracefully on SIGTERM, finishing in-flight requests', async () => {
    const inflight = fetch(`${base}/v1/audit-events/export`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    }).then((r) => r.text());
    await new Promise((r) => setTimeout(r, 20));
    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
    server.kill('SIGTERM');
    expect((await inflight).length).toBeGreaterThan(0);
    expect(await exited).toBe(0);
    await expect(fetch(`${base}/healthz`)).rejects.toThrow();
  }, 30_000);

  it('manages keys and migrations from the CLI', async () => {
    const created = await run(
      process.execPath,
      tessera('keys', 'create', '--env', 'live', '--scope', 'check', '--name', 'ops'),
      { env },
    );
    const key = JSON.parse(created.stdout) as { secret: string; environment: string; id: string };
    expect(key).toMatchObject({ environment: 'live' });
    expect(key.secret).toMatch(/^sk_live_/);
    const listed = await run(process.execPath, tessera('keys', 'list', '--env', 'live'), { env });
    expect(listed.stdout).toContain(key.id);
    const migrated = await run(process.execPath, tessera('migrate'), { env });
    expect(migrated.stdout).toContain('nothing to do');
    const bad = await run(process.execPath, tessera('serve'), {
      env: { ...env, PORT: 'eighty' },
    }).catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 1 });
    expect((bad as { stderr: string }).stderr.trim()).toBe(
      'tessera: invalid configuration: PORT Invalid input: expected number, received NaN',
    );
  }, 90_000);
});
