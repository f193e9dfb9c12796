import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

describe('config', () => {
  it('has defaults that run on the embedded database', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      databaseUrl: undefined,
      redisUrl: undefined,
      dataDir: './.tessera',
      logLevel: 'info',
    });
  });

  it.each([
    [{ PORT: 'eighty' }, 'PORT'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL'],
    [{ REDIS_URL: 'localhost:6379' }, 'REDIS_URL'],
    [{ TESSERA_ADMIN_KEY: 'sk_live_abcdefghijklmnopqrst' }, 'TESSERA_ADMIN_KEY'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
  ])('stops on a bad value with one line naming the variable (%o)', (env, name) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    try {
      loadConfig(env);
    } catch (err) {
      expect((err as Error).message).toMatch(new RegExp(`^invalid configuration: ${name} `));
      expect((err as Error).message).not.toContain('\n');
    }
  });

  it('requires TESSERA_SECRET_KEY in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/TESSERA_SECRET_KEY is required/);
    const key = 'k'.repeat(32);
    expect(loadConfig({ NODE_ENV: 'production', TESSERA_SECRET_KEY: key }).secretKey).toBe(key);
    expect(loadConfig({}).secretKey).toBeUndefined();
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', PORT: '' }).port).toBe(3000);
  });

  it('turns the node:http fast path off only when asked', () => {
    expect(loadConfig({}).fastPath).toBe(true);
    expect(loadConfig({ TESSERA_FAST_PATH: 'false' }).fastPath).toBe(false);
    expect(() => loadConfig({ TESSERA_FAST_PATH: 'off' })).toThrow(/TESSERA_FAST_PATH/);
  });

  it('signs tokens as tessera unless TESSERA_TOKEN_ISSUER names another issuer', () => {
    expect(loadConfig({}).tokenIssuer).toBe('tessera');
    expect(loadConfig({ TESSERA_TOKEN_ISSUER: 'https://entitlements.example.com' }).tokenIssuer).toBe(
      'https://entitlements.example.com',
    );
  });
});
