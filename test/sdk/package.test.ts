import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';

/** @tessera/sdk builds with tsc and packs as its own package, with typings for every export. */

const sdk = join(dirname(fileURLToPath(import.meta.url)), '../../sdk');
const tsc = join(sdk, '../node_modules/typescript/bin/tsc');
type Pack = { name: string; files: { path: string }[] }[];
let packed: Pack;

beforeAll(() => {
  execFileSync(process.execPath, [tsc, '-p', join(sdk, 'tsconfig.json')], { cwd: sdk, stdio: 'pipe' });
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: sdk,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  packed = JSON.parse(out) as Pack;
}, 120_000);

describe('the @tessera/sdk package', () => {
  it('packs the built JavaScript and .d.ts typings, and no sources', () => {
    const files = packed[0]!.files.map((f) => f.path).sort();
    expect(packed[0]!.name).toBe('@tessera/sdk');
    for (const entry of ['index', 'client', 'local', 'types', 'openfeature', 'hono']) {
      expect(files).toContain(`dist/${entry}.js`);
      expect(files).toContain(`dist/${entry}.d.ts`);
    }
    expect(files.filter((f) => f.startsWith('src/') || f.endsWith('.test.ts'))).toEqual([]);
  });

  it('points every export at a built file with its typings', () => {
    const manifest = JSON.parse(readFileSync(join(sdk, 'package.json'), 'utf8')) as {
      exports: Record<string, { types: string; default: string }>;
      dependencies: Record<string, string>;
    };
    expect(Object.keys(manifest.exports).sort()).toEqual(['.', './hono', './openfeature']);
    const files = packed[0]!.files.map((f) => f.path);
    for (const target of Object.values(manifest.exports)) {
      expect(files).toContain(target.types.replace('./', ''));
      expect(files).toContain(target.default.replace('./', ''));
    }
    expect(Object.keys(manifest.dependencies)).toEqual(['jose']);
  });

  it('loads as plain Node ESM from dist', async () => {
    const main = (await import(pathToFileURL(join(sdk, 'dist/index.js')).href)) as Record<string, unknown>;
    expect(typeof main.createTessera).toBe('function');
    expect(typeof main.verifyEntitlementsToken).toBe('function');
    const of = (await import(pathToFileURL(join(sdk, 'dist/openfeature.js')).href)) as Record<
      string,
      unknown
    >;
    expect(typeof of.TesseraProvider).toBe('function');
    const hono = (await import(pathToFileURL(join(sdk, 'dist/hono.js')).href)) as Record<string, unknown>;
    expect(typeof hono.createRequireFeature).toBe('function');
  });
});
