import * as jose from 'jose';
import { describe, expect, it, vi } from 'vitest';
import { decideFromToken, verifyEntitlementsToken } from '../../sdk/src/index.ts';

/** Local mode imports a JWKS document's keys once, not on every verification. */

vi.mock('jose', async (importOriginal) => {
  const actual = await importOriginal<typeof import('jose')>();
  return { ...actual, createLocalJWKSet: vi.fn(actual.createLocalJWKSet) };
});

async function signed(count: number) {
  const { publicKey, privateKey } = await jose.generateKeyPair('EdDSA', { crv: 'Ed25519' });
  const jwks = { keys: [{ ...(await jose.exportJWK(publicKey)), kid: 'k1', alg: 'EdDSA' }] };
  const tokens: string[] = [];
  for (let i = 0; i < count; i++) {
    tokens.push(
      await new jose.SignJWT({ ver: i, ent: { reports: true } })
        .setProtectedHeader({ alg: 'EdDSA', kid: 'k1' })
        .setIssuer('tessera')
        .setSubject(`c${i}`)
        .setAudience('test')
        .setIssuedAt()
        .setExpirationTime('10m')
        .sign(privateKey),
    );
  }
  return { jwks, tokens };
}

describe('token local mode with a JWKS document', () => {
  it('builds the key set once per JWKS document and reuses it for every token', async () => {
    const { jwks, tokens } = await signed(3);
    const created = vi.mocked(jose.createLocalJWKSet);
    created.mockClear();
    for (const token of tokens) {
      const verified = await verifyEntitlementsToken(token, { jwks, audience: 'test' });
      expect(decideFromToken(verified, 'reports').allowed).toBe(true);
    }
    expect(created).toHaveBeenCalledTimes(1);
  });

  it('a different JWKS document gets its own keys', async () => {
    const a = await signed(1);
    const b = await signed(1);
    await verifyEntitlementsToken(a.tokens[0] as string, { jwks: a.jwks });
    await verifyEntitlementsToken(b.tokens[0] as string, { jwks: b.jwks });
    await expect(verifyEntitlementsToken(b.tokens[0] as string, { jwks: a.jwks })).rejects.toThrow();
  });
});
