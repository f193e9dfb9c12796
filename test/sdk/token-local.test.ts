import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createTessera, decideFromToken, verifyEntitlementsToken } from '../../sdk/src/index.ts';

/** The token local mode, on tokens signed here with an Ed25519 key and a local JWKS. */

async function keys() {
  const { publicKey, privateKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'EdDSA', use: 'sig' };
  return { privateKey, jwks: { keys: [jwk] } };
}

const ent = {
  reports: true,
  theme: 'dark',
  calls: { limit: 100, remaining: 3, resets_at: '2026-02-01T00:00:00.000Z' },
  unlimited: { limit: null, remaining: null, resets_at: null },
};

async function sign(
  privateKey: Awaited<ReturnType<typeof keys>>['privateKey'],
  claims: Record<string, unknown>,
  exp = '10m',
  kid = 'k1',
) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'EdDSA', kid })
    .setIssuer('tessera')
    .setSubject('acme')
    .setAudience('test')
    .setIssuedAt()
    .setExpirationTime(exp)
    .sign(privateKey);
}

describe('token local mode', () => {
  it('verifies a token and answers checks from its ent claim', async () => {
    const { privateKey, jwks } = await keys();
    const verified = await verifyEntitlementsToken(await sign(privateKey, { ver: 7, ent }), {
      jwks,
      audience: 'test',
      issuer: 'tessera',
    });
    expect(verified).toMatchObject({ customerId: 'acme', environment: 'test', version: 7 });
    expect(decideFromToken(verified, 'reports')).toMatchObject({
      allowed: true,
      source: 'token',
      version: 7,
    });
    expect(decideFromToken(verified, 'theme')).toMatchObject({
      allowed: true,
      type: 'config',
      value: 'dark',
    });
    expect(decideFromToken(verified, 'calls', 3)).toMatchObject({ allowed: true, remaining: 3 });
    expect(decideFromToken(verified, 'calls', 4)).toMatchObject({ allowed: false, reason: 'limit_exceeded' });
    expect(decideFromToken(verified, 'unlimited', 1e9).allowed).toBe(true);
    expect(decideFromToken(verified, 'sso')).toMatchObject({ allowed: false, reason: 'not_in_plan' });
  });

  it('refuses an expired token, another key, another audience and another algorithm', async () => {
    const { privateKey, jwks } = await keys();
    const other = await keys();
    await expect(
      verifyEntitlementsToken(await sign(privateKey, { ver: 1, ent }, '-1h'), { jwks }),
    ).rejects.toThrow();
    await expect(
      verifyEntitlementsToken(await sign(other.privateKey, { ver: 1, ent }), { jwks }),
    ).rejects.toThrow();
    await expect(
      verifyEntitlementsToken(await sign(privateKey, { ver: 1, ent }), { jwks, audience: 'live' }),
    ).rejects.toThrow();
    const hs = await new SignJWT({ ver: 1, ent })
      .setProtectedHeader({ alg: 'HS256', kid: 'k1' })
      .setSubject('acme')
      .setExpirationTime('10m')
      .sign(new Uint8Array(32));
    await expect(verifyEntitlementsToken(hs, { jwks })).rejects.toThrow();
  });

  it('refuses a token without an ent claim', async () => {
    const { privateKey, jwks } = await keys();
    await expect(verifyEntitlementsToken(await sign(privateKey, { ver: 1 }), { jwks })).rejects.toThrow(
      /ent/,
    );
  });

  it("fromToken verifies against the server's /.well-known/jwks.json", async () => {
    const { privateKey, jwks } = await keys();
    const paths: string[] = [];
    const server = createServer((req, res) => {
      paths.push(req.url ?? '');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(jwks));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const tessera = createTessera({ baseUrl: base, apiKey: 'sk_test_x' });
      const local = await tessera.fromToken(await sign(privateKey, { ver: 3, ent }), { audience: 'test' });
      expect(local.token.customerId).toBe('acme');
      expect(local.check('reports')).toMatchObject({ allowed: true, source: 'token', stale: false });
      expect(local.check('calls', 5)).toMatchObject({ allowed: false, reason: 'limit_exceeded' });
      expect(paths).toEqual(['/.well-known/jwks.json']);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
