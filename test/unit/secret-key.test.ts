import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/platform/logger.ts';
import { SECRET_KEY_FILE, SecretKeys } from '../../src/platform/secret-key.ts';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'tessera-secret-'));
  dirs.push(dir);
  return dir;
}

function recordingLogger(): { logger: ReturnType<typeof createLogger>; warnings: string[] } {
  const warnings: string[] = [];
  const logger = createLogger('silent');
  logger.warn = ((obj: unknown, msg?: string) => {
    warnings.push(typeof obj === 'string' ? obj : (msg ?? ''));
  }) as typeof logger.warn;
  return { logger, warnings };
}

describe('SecretKeys', () => {
  it('derives stable, purpose-separated keys from TESSERA_SECRET_KEY and writes no file', () => {
    const dir = tempDir();
    const { logger, warnings } = recordingLogger();
    const a = new SecretKeys({ secretKey: 's'.repeat(40), dataDir: dir }, logger);
    const b = new SecretKeys({ secretKey: 's'.repeat(40), dataDir: dir }, logger);
    const other = new SecretKeys({ secretKey: 't'.repeat(40), dataDir: dir }, logger);
    expect(a.deriveKey('audit')).toHaveLength(32);
    expect(a.deriveKey('audit').equals(b.deriveKey('audit'))).toBe(true);
    expect(a.deriveKey('audit').equals(a.deriveKey('stripe'))).toBe(false);
    expect(a.deriveKey('audit').equals(other.deriveKey('audit'))).toBe(false);
    expect(a.keyId(a.deriveKey('audit'))).toMatch(/^[0-9a-f]{16}$/);
    expect(a.source).toBe('TESSERA_SECRET_KEY');
    expect(() => statSync(path.join(dir, SECRET_KEY_FILE))).toThrow();
    expect(warnings).toEqual([]);
  });

  it('without TESSERA_SECRET_KEY creates a random key file (0600) once, warns, and reuses it', () => {
    const dir = path.join(tempDir(), 'nested');
    const { logger, warnings } = recordingLogger();
    const first = new SecretKeys({ secretKey: undefined, dataDir: dir }, logger);
    const key = first.deriveKey('audit');
    const file = path.join(dir, SECRET_KEY_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const content = readFileSync(file, 'utf8');
    expect(first.source).toBe('file');
    expect(warnings.join('\n')).toContain('TESSERA_SECRET_KEY');

    const again = new SecretKeys({ secretKey: undefined, dataDir: dir }, logger);
    expect(again.deriveKey('audit').equals(key)).toBe(true);
    expect(readFileSync(file, 'utf8')).toBe(content);

    // Another data dir means another key.
    const elsewhere = new SecretKeys({ secretKey: undefined, dataDir: tempDir() }, logger);
    expect(elsewhere.deriveKey('audit').equals(key)).toBe(false);
  });
});
