import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * What a credential looks like in text: Tessera API keys, Stripe secret and restricted keys,
 * webhook signing secrets (Stripe's and ours: `whsec_`), bearer credentials and signed tokens
 * (JWS). None of these may ever appear in a log line.
 */
export const SECRET_PATTERNS: readonly RegExp[] = [
  /\b[sr]k_(test|live)_[A-Za-z0-9]{8,}/,
  /\bwhsec_[A-Za-z0-9+/=]{8,}/,
  /\bBearer\s+[^\s"\\]{8,}/i,
  /\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]{8,}/,
];

/** Every line of `text` that holds one of `known` or matches a secret pattern, with what it held. */
export function secretsIn(text: string, known: readonly string[] = []): string[] {
  const found: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const hit =
      known.find((secret) => secret.length >= 8 && line.includes(secret)) ??
      SECRET_PATTERNS.map((p) => line.match(p)?.[0]).find((m) => m !== undefined);
    if (hit !== undefined) found.push(`${hit.slice(0, 14)}… in: ${line.slice(0, 300)}`);
  }
  return found;
}

/** The secrets found in every `*.log` file of a directory (see TESSERA_TEST_LOG_DIR). */
export function secretsInLogDir(dir: string): { files: number; bytes: number; found: string[] } {
  if (!existsSync(dir)) return { files: 0, bytes: 0, found: [] };
  const found: string[] = [];
  let files = 0;
  let bytes = 0;
  for (const name of readdirSync(dir)) {
    if (!name.endsWith('.log')) continue;
    const text = readFileSync(join(dir, name), 'utf8');
    files++;
    bytes += text.length;
    for (const hit of secretsIn(text)) found.push(`${name}: ${hit}`);
  }
  return { files, bytes, found };
}
