import type { JWK } from 'jose';
import type { Json, NullableTimestamp, Timestamp } from '../../platform/db-types.ts';

/** An Ed25519 key that signs an environment's tokens; `id` is the JWS `kid`. */
export interface SigningKeysTable {
  id: string;
  environment: string;
  public_jwk: Json<JWK>;
  /** The private JWK, sealed (platform/secret-box.ts) with the environment as context. */
  private_key: string;
  created_at: Timestamp;
  /** When a rotation replaced it; null while it is the active key. */
  retired_at: NullableTimestamp;
  /** When the last token it may have signed has expired: it leaves the JWKS then. */
  expires_from_jwks_at: NullableTimestamp;
}

export interface TokenTables {
  signing_keys: SigningKeysTable;
}
