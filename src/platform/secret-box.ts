import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { SecretKeys } from './secret-key.ts';

/**
 * Secrets stored in the database (a vendor's Stripe keys), sealed with AES-256-GCM under a key
 * derived for one purpose from the root secret (secret-key.ts), which the database never holds.
 * The sealed text names the key that sealed it, so a changed TESSERA_SECRET_KEY is reported as
 * such instead of as garbage: `v1.<key id>.<iv>.<tag>.<ciphertext>` (base64url parts).
 */
export class SecretBox {
  private readonly key: Buffer;
  private readonly keyId: string;

  constructor(secrets: SecretKeys, purpose: string) {
    this.key = secrets.deriveKey(`tessera secret box v1: ${purpose}`);
    this.keyId = secrets.keyId(this.key);
  }

  seal(plaintext: string, context: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    // The context (e.g. the environment) is authenticated: a sealed value copied to another row fails.
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    const parts = [iv, cipher.getAuthTag(), body].map((b) => b.toString('base64url'));
    return ['v1', this.keyId, ...parts].join('.');
  }

  open(sealed: string, context: string): string {
    const [version, keyId, iv, tag, body] = sealed.split('.');
    if (version !== 'v1' || iv === undefined || tag === undefined || body === undefined)
      throw new SecretBoxError('not a sealed secret');
    if (keyId !== this.keyId)
      throw new SecretBoxError('sealed with another key: TESSERA_SECRET_KEY changed since it was stored');
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([decipher.update(Buffer.from(body, 'base64url')), decipher.final()]).toString(
        'utf8',
      );
    } catch {
      throw new SecretBoxError('the sealed secret does not open: it was altered or moved');
    }
  }
}

export class SecretBoxError extends Error {}
