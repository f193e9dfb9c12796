import { z } from 'zod';

/**
 * The only reader of process.env. Every setting is validated here so a bad value stops start-up
 * with one line that names the variable.
 */
const durationSeconds = z.coerce.number().int().positive();

const EnvSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(10),
  /**
   * A streaming replica of DATABASE_URL: snapshot loads (cache misses of checks) read it when it is
   * not behind what this node has seen; writes and transactions stay on the primary.
   */
  DATABASE_REPLICA_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .optional(),
  /**
   * A Redis Cluster instead of one Redis: some of its nodes as `host:port`, comma-separated (the
   * client finds the rest). Not together with REDIS_URL.
   */
  REDIS_CLUSTER_NODES: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((n) => n.trim())
        .filter((n) => n !== ''),
    )
    .pipe(
      z
        .array(
          z
            .string()
            .regex(/^[A-Za-z0-9.-]+:\d{1,5}$|^\[[0-9A-Fa-f:.]+\]:\d{1,5}$/, 'must be host:port entries'),
        )
        .min(1, 'must name at least one host:port'),
    )
    .optional(),
  /** Prefix for every Redis key and channel, so several installs (or test runs) can share one Redis. */
  REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_-]*$/, 'letters, digits, ":", "_" and "-" only')
    .default('tessera:'),
  TESSERA_DATA_DIR: z.string().min(1).default('./.tessera'),
  TESSERA_ADMIN_KEY: z
    .string()
    .regex(/^sk_test_[A-Za-z0-9]{16,}$/, 'must look like sk_test_ followed by at least 16 letters or digits')
    .optional(),
  /**
   * Root secret of the keys Tessera derives (audit checkpoint signatures; later, encryption of stored
   * secrets). 32+ characters; when unset, a random key is kept in TESSERA_DATA_DIR/secret.key.
   */
  TESSERA_SECRET_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
  /** The `iss` claim of the entitlement tokens Tessera signs. */
  TESSERA_TOKEN_ISSUER: z.string().min(1).max(200).default('tessera'),
  /** Seconds between signed checkpoints of the audit chains (written only when a chain's head moved). */
  AUDIT_CHECKPOINT_SECONDS: durationSeconds.default(300),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Seconds an Idempotency-Key is remembered. */
  IDEMPOTENCY_TTL_SECONDS: durationSeconds.default(86_400),
  /** Seconds a resolved API key stays cached in process; revocation is visible after this. */
  API_KEY_CACHE_SECONDS: z.coerce.number().min(0).max(5).default(5),
  /** Customers whose snapshots stay cached per process. */
  SNAPSHOT_CACHE_SIZE: z.coerce.number().int().min(0).default(50_000),
  /** Upper bound on how long a snapshot is trusted without an invalidation (a safety net, not the mechanism). */
  SNAPSHOT_CACHE_TTL_SECONDS: z.coerce.number().int().min(1).default(300),
  /** Metered counters whose readings stay cached per process (Redis tracking keeps them true); 0 turns the cache off. */
  COUNTER_CACHE_SIZE: z.coerce.number().int().min(0).default(100_000),
  /** Upper bound on how long a cached counter reading is trusted without an invalidation (a safety net). */
  COUNTER_CACHE_SECONDS: z.coerce.number().int().min(1).default(30),
  OUTBOX_POLL_MS: z.coerce.number().int().min(10).default(200),
  /** Run the outbox dispatcher and scheduler in the serve process (set false when a separate worker runs them). */
  RUN_WORKERS: z
    .enum(['true', 'false', '1', '0'])
    .default('true')
    .transform((v) => v === 'true' || v === '1'),
  /** Authentication failures one client address may make per window before it gets 429; 0 turns the brake off. */
  TESSERA_AUTH_FAILURE_LIMIT: z.coerce.number().int().min(0).default(30),
  TESSERA_AUTH_FAILURE_WINDOW_SECONDS: durationSeconds.default(60),
  /** Behind a trusted reverse proxy: take the client address from the last X-Forwarded-For entry. */
  TESSERA_TRUST_PROXY: z
    .enum(['true', 'false', '1', '0'])
    .default('false')
    .transform((v) => v === 'true' || v === '1'),
  /**
   * Answer `POST /v1/check`, `/v1/usage` and `/v1/usage/batch` in their common shape on node:http
   * directly (src/http/server.ts); false sends every request through the Hono app.
   */
  TESSERA_FAST_PATH: z
    .enum(['true', 'false', '1', '0'])
    .default('true')
    .transform((v) => v === 'true' || v === '1'),
  /** Accept webhook endpoints on plain http to a loopback address (tests, local development only). */
  TESSERA_WEBHOOKS_ALLOW_LOOPBACK: z
    .enum(['true', 'false', '1', '0'])
    .default('false')
    .transform((v) => v === 'true' || v === '1'),
  /** Browser origins allowed by CORS, comma-separated (`*` for any); unset: no CORS headers. */
  TESSERA_CORS_ORIGINS: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((o) => o.trim())
        .filter((o) => o !== ''),
    )
    .pipe(
      z.array(
        z
          .string()
          .regex(/^(\*|https?:\/\/[^/\s]+)$/, 'must be origins like https://console.example.com, or *'),
      ),
    )
    .optional(),
  /** When set, GET /metrics needs `Authorization: Bearer <this token>`. */
  TESSERA_METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  /** Point the Stripe client at another server (tests, local development): `http://127.0.0.1:12111`. */
  STRIPE_API_BASE: z.url().optional(),
  /** Hours between scheduled Stripe reconciliations in the worker role; 0 turns them off (at most 500: a timer holds 24.8 days). */
  STRIPE_RECONCILE_HOURS: z.coerce.number().min(0).max(500).default(24),
  SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(10_000),
  /** Requests per second per API key and node, for keys without a limit of their own; 0: unlimited. */
  TESSERA_RATE_LIMIT_DEFAULT: z.coerce.number().int().min(0).max(1_000_000).default(0),
  /** The largest request body accepted, in bytes (larger: 413). */
  TESSERA_MAX_BODY_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(64 * 1024 * 1024)
    .default(1024 * 1024),
  /** The longest query string accepted, in characters (longer: 414). */
  TESSERA_MAX_QUERY_LENGTH: z.coerce.number().int().min(256).max(65_536).default(8192),
  /** Send Strict-Transport-Security with this max-age (served over https only); 0: not sent. */
  TESSERA_HSTS_SECONDS: z.coerce.number().int().min(0).max(63_072_000).default(0),
});

export type Config = {
  port: number;
  host: string;
  databaseUrl: string | undefined;
  databasePoolSize: number;
  databaseReplicaUrl: string | undefined;
  redisUrl: string | undefined;
  /** Seed nodes of a Redis Cluster (`host:port`); set instead of redisUrl. */
  redisClusterNodes: string[] | undefined;
  redisPrefix: string;
  dataDir: string;
  adminKey: string | undefined;
  secretKey: string | undefined;
  tokenIssuer: string;
  auditCheckpointSeconds: number;
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
  idempotencyTtlSeconds: number;
  apiKeyCacheSeconds: number;
  snapshotCacheSize: number;
  snapshotCacheTtlSeconds: number;
  counterCacheSize: number;
  counterCacheSeconds: number;
  outboxPollMs: number;
  runWorkers: boolean;
  stripeApiBase: string | undefined;
  stripeReconcileHours: number;
  shutdownGraceMs: number;
  authFailureLimit: number;
  authFailureWindowSeconds: number;
  trustProxy: boolean;
  fastPath: boolean;
  webhooksAllowLoopback: boolean;
  corsOrigins: string[];
  metricsToken: string | undefined;
  rateLimitDefault: number;
  maxBodyBytes: number;
  maxQueryLength: number;
  hstsSeconds: number;
};

export class ConfigError extends Error {}

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable means "unset", as shells and .env files commonly leave them.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ConfigError(`invalid configuration: ${issue.path.join('.')} ${issue.message}`);
  }
  const e = parsed.data;
  if (e.REDIS_URL && e.REDIS_CLUSTER_NODES) {
    throw new ConfigError(
      'invalid configuration: REDIS_CLUSTER_NODES and REDIS_URL are both set: name one Redis (a cluster, or a single server)',
    );
  }
  // The keys sealing stored Stripe secrets and signing audit checkpoints derive from it; a random
  // key in the data dir is for the embedded default and development, never for production.
  if (cleaned.NODE_ENV === 'production' && !e.TESSERA_SECRET_KEY) {
    throw new ConfigError(
      'invalid configuration: TESSERA_SECRET_KEY is required when NODE_ENV=production (32+ characters, kept out of the database)',
    );
  }
  // Embedded mode (no DATABASE_URL) has one in-process database and nothing to replicate it.
  if (e.DATABASE_REPLICA_URL && !e.DATABASE_URL) {
    throw new ConfigError(
      'invalid configuration: DATABASE_REPLICA_URL needs DATABASE_URL (the embedded database has no replica)',
    );
  }
  return {
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    databaseReplicaUrl: e.DATABASE_REPLICA_URL,
    redisUrl: e.REDIS_URL,
    redisClusterNodes: e.REDIS_CLUSTER_NODES,
    redisPrefix: e.REDIS_PREFIX,
    dataDir: e.TESSERA_DATA_DIR,
    adminKey: e.TESSERA_ADMIN_KEY,
    secretKey: e.TESSERA_SECRET_KEY,
    tokenIssuer: e.TESSERA_TOKEN_ISSUER,
    auditCheckpointSeconds: e.AUDIT_CHECKPOINT_SECONDS,
    logLevel: e.LOG_LEVEL,
    idempotencyTtlSeconds: e.IDEMPOTENCY_TTL_SECONDS,
    apiKeyCacheSeconds: e.API_KEY_CACHE_SECONDS,
    snapshotCacheSize: e.SNAPSHOT_CACHE_SIZE,
    snapshotCacheTtlSeconds: e.SNAPSHOT_CACHE_TTL_SECONDS,
    counterCacheSize: e.COUNTER_CACHE_SIZE,
    counterCacheSeconds: e.COUNTER_CACHE_SECONDS,
    outboxPollMs: e.OUTBOX_POLL_MS,
    runWorkers: e.RUN_WORKERS,
    stripeApiBase: e.STRIPE_API_BASE,
    stripeReconcileHours: e.STRIPE_RECONCILE_HOURS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    authFailureLimit: e.TESSERA_AUTH_FAILURE_LIMIT,
    authFailureWindowSeconds: e.TESSERA_AUTH_FAILURE_WINDOW_SECONDS,
    trustProxy: e.TESSERA_TRUST_PROXY,
    fastPath: e.TESSERA_FAST_PATH,
    webhooksAllowLoopback: e.TESSERA_WEBHOOKS_ALLOW_LOOPBACK,
    corsOrigins: e.TESSERA_CORS_ORIGINS ?? [],
    metricsToken: e.TESSERA_METRICS_TOKEN,
    rateLimitDefault: e.TESSERA_RATE_LIMIT_DEFAULT,
    maxBodyBytes: e.TESSERA_MAX_BODY_BYTES,
    maxQueryLength: e.TESSERA_MAX_QUERY_LENGTH,
    hstsSeconds: e.TESSERA_HSTS_SECONDS,
  };
}
