import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/platform/db.ts';
import { createLogger } from '../../src/platform/logger.ts';
import { MIGRATIONS_DIR, migrateToLatest } from '../../src/platform/migrate.ts';
import { startRuntime } from '../../src/runtime.ts';

const dataDir = mkdtempSync(path.join(tmpdir(), 'tessera-embedded-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

const ADMIN = 'sk_test_embeddedSmokeKey0000000000';
const config = {
  ...loadConfig({}),
  dataDir,
  adminKey: ADMIN,
  logLevel: 'silent' as const,
  runWorkers: false,
};

async function call(
  app: { request: (p: string, i: RequestInit) => Response | Promise<Response> },
  method: string,
  p: string,
  body?: unknown,
) {
  const res = await app.request(p, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('embedded PGlite mode (no DATABASE_URL)', () => {
  it('runs the same migrations as PostgreSQL', async () => {
    const database = await openDatabase({ ...config, databaseUrl: undefined });
    try {
      expect(database.kind).toBe('embedded');
      await migrateToLatest(database.db);
      const applied = await sql<{ name: string }>`SELECT name FROM kysely_migration ORDER BY name`.execute(
        database.db,
      );
      const files = readdirSync(MIGRATIONS_DIR)
        .filter((f) => f.endsWith('.ts'))
        .map((f) => f.replace(/\.ts$/, ''))
        .sort();
      expect(applied.rows.map((r) => r.name)).toEqual(files);
    } finally {
      await database.close();
    }
  });

  it('passes a smoke suite and keeps its data across a restart', async () => {
    const first = await startRuntime(
      { ...config, databaseUrl: undefined },
      { logger: createLogger('silent'), workers: false },
    );
    let keyId: string;
    try {
      const created = await call(first.app, 'POST', '/v1/api-keys', { name: 'smoke', scopes: ['check'] });
      expect(created.status).toBe(201);
      keyId = created.body.id as string;
      const feature = await call(first.app, 'POST', '/v1/features', {
        key: 'seats',
        name: 'Seats',
        type: 'metered',
        unit: 'seat',
      });
      expect([201, 404]).toContain(feature.status);
      const verify = await call(first.app, 'GET', '/v1/audit-events/verify');
      expect(verify.body).toMatchObject({ ok: true });
      const ready = await first.app.request('/readyz');
      expect(ready.status).toBe(200);
    } finally {
      await first.close();
    }
    const second = await startRuntime(
      { ...config, databaseUrl: undefined },
      { logger: createLogger('silent'), workers: false },
    );
    try {
      const keys = await call(second.app, 'GET', '/v1/api-keys');
      expect((keys.body.data as Array<{ id: string }>).map((k) => k.id)).toContain(keyId);
    } finally {
      await second.close();
    }
  });
});
