import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.ts';
import type { Logger } from './logger.ts';

/** Where the random root key lives, under TESSERA_DATA_DIR, when TESSERA_SECRET_KEY is unset. */
export const SECRET_KEY_FILE = 'secret.key';

/**
 * The root secret every key Tessera needs is derived from (audit checkpoint signatures today;
 * encryption of stored secrets later). It comes from TESSERA_SECRET_KEY, or else from a random key
 * kept in a file under the data dir. It must never be stored in the database: the keys derived from
 * it protect against someone who can write to the database.
 *
 * The root is read on first use, not at start-up, so processes that never sign or encrypt anything
 * (migrations, key commands) neither need nor create it.
 */
export class SecretKeys {
  private root: Buffer | null = null;
  private readonly derived = new Map<string, Buffer>();

  constructor(
    private readonly config: Pick<Config, 'secretKey' | 'dataDir'>,
    private readonly logger: Logger,
  ) {}

  /** Where the root secret comes from. */
  get source(): 'TESSERA_SECRET_KEY' | 'file' {
    return this.config.secretKey ? 'TESSERA_SECRET_KEY' : 'file';
  }

  /**
   * A 32-byte key for one purpose (HKDF-SHA256, the purpose as `info`): keys for different purposes
   * are independent, so one leaking or being misused says nothing about another.
   */
  deriveKey(purpose: string): Buffer {
    let key = this.derived.get(purpose);
    if (!key) {
      key = Buffer.from(hkdfSync('sha256', this.rootKey(), Buffer.alloc(0), purpose, 32));
      this.derived.set(purpose, key);
    }
    return key;
  }

  /** A short public name of a derived key (a hash prefix), stored beside what the key signed. */
  keyId(key: Buffer): string {
    return createHash('sha256').update(key).digest('hex').slice(0, 16);
  }

  private rootKey(): Buffer {
    if (this.root) return this.root;
    if (this.config.secretKey) {
      this.root = Buffer.from(this.config.secretKey, 'utf8');
      return this.root;
    }
    const file = path.resolve(this.config.dataDir, SECRET_KEY_FILE);
    const created = ensureKeyFile(file);
    this.logger.warn(
      { file },
      `${created ? 'created a random secret key' : 'using the random secret key'} in ${file}: production must set TESSERA_SECRET_KEY (and keep it out of the database and its backups)`,
    );
    this.root = Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
    if (this.root.length < 32) throw new Error(`${file} does not hold a 32-byte hex key`);
    return this.root;
  }
}

/**
 * Creates the key file once, with mode 0600. The key is written to a private temporary file and
 * then linked into place, which fails if the file exists: two processes starting together agree on
 * one key and neither reads a half-written file. Answers whether this call created it.
 */
function ensureKeyFile(file: string): boolean {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(temporary, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(temporary, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    rmSync(temporary, { force: true });
  }
}
