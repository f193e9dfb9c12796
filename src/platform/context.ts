import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import type { Config } from '../config.ts';
import { type Actor, type AuditEntry, auditDrafts } from './audit-chain.ts';
import type { Clock } from './clock.ts';
import type { Database, Db, Tx } from './db.ts';
import { Forbidden } from './errors.ts';
import type { Logger } from './logger.ts';
import type { Metrics } from './metrics.ts';
import type { OutboxEvent } from './outbox.ts';
import type { SecretKeys } from './secret-key.ts';

export type Scope = 'admin' | 'check';
export type { Actor } from './audit-chain.ts';

/** Listeners told, after a commit, which customers' holdings changed (cache invalidation, outbox poke). */
export type CommitListener = (committed: {
  environment: string;
  customerIds: string[];
  topics: string[];
  /** Each touched customer's entitlement version after the change (customer id -> version). */
  versions: ReadonlyMap<string, number>;
}) => void;

/**
 * The modules' services (the decision engine, metering, customer deletion hooks), built once by
 * src/runtime.ts. Platform carries them without naming them: their shape is declared at the root,
 * in src/services.ts, which augments this interface (types only, nothing registers at run time).
 */
// biome-ignore lint/suspicious/noEmptyInterface: filled in by src/services.ts (declaration merging)
export interface Services {}

/** Process-wide platform dependencies: what the runtime opens before it builds any module service. */
export interface PlatformDeps {
  config: Config;
  database: Database;
  db: Db;
  redis: Redis | null;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  commitListeners: CommitListener[];
  /** Keys derived from TESSERA_SECRET_KEY (never stored in the database). */
  secrets: SecretKeys;
}

/** Process-wide dependencies, built once in runtime.ts (or per test) and handed to every service. */
export interface AppDeps extends PlatformDeps {
  services: Services;
}

/** Who is asking, in which environment: the first argument of every service verb. */
export interface Ctx {
  deps: AppDeps;
  environment: string;
  actor: Actor;
  scopes: ReadonlySet<Scope>;
  requestId: string | null;
}

/** A context inside one transaction; collects the audit, outbox and version bumps of the change. */
export interface TxCtx extends Ctx {
  tx: Tx;
  now: Date;
  audit(entry: AuditEntry): void;
  emit(event: OutboxEvent): void;
  /** Marks that what this customer holds changed: its entitlement version grows at commit. */
  touchCustomer(customerId: string): void;
}

export function requireScope(ctx: Ctx, scope: Scope): void {
  if (ctx.scopes.has('admin') || ctx.scopes.has(scope)) return;
  throw new Forbidden(`this API key lacks the '${scope}' scope`);
}

export function systemContext(
  deps: AppDeps,
  environment: string,
  actor: Actor = { type: 'system', id: null, name: 'system' },
): Ctx {
  return { deps, environment, actor, scopes: new Set<Scope>(['admin']), requestId: null };
}

function isTxCtx(ctx: Ctx | TxCtx): ctx is TxCtx {
  return 'tx' in ctx;
}

/**
 * One transaction per change: runs `fn`, then writes the version bumps, outbox events and audit
 * events it collected, in that order, before commit. The audit head lock is taken last so
 * concurrent changes wait on it for as short a time as possible. Reuses an outer transaction.
 */
export async function withTransaction<T>(ctx: Ctx | TxCtx, fn: (t: TxCtx) => Promise<T>): Promise<T> {
  if (isTxCtx(ctx)) return fn(ctx);
  const audits: AuditEntry[] = [];
  const events: OutboxEvent[] = [];
  const touched = new Set<string>();
  const versions = new Map<string, number>();
  const now = ctx.deps.clock.now();
  const result = await ctx.deps.db.transaction().execute(async (tx) => {
    const t: TxCtx = {
      ...ctx,
      tx,
      now,
      audit: (entry) => audits.push(entry),
      emit: (event) => events.push(event),
      touchCustomer: (id) => touched.add(id),
    };
    const value = await fn(t);
    if (touched.size === 0 && events.length === 0 && audits.length === 0) return value;
    // The version bumps, the outbox events (then one `customer.entitlements_changed` per touched
    // customer, whose version lets a node that already reloaded ignore a late repeat) and the audit
    // append, in one statement: see migration 20261207200000.
    const { rows } = await sql<{ o_customer_id: string; o_version: number | string }>`
      SELECT o_customer_id, o_version FROM tessera_commit_change(
        ${ctx.environment}, ${[...touched].sort()}::text[], ${now},
        ${JSON.stringify(events.map((e) => ({ customer_id: e.customerId ?? null, topic: e.topic, payload: e.payload })))}::jsonb,
        ${JSON.stringify(auditDrafts(ctx.environment, ctx.actor, ctx.requestId, now, audits))}::jsonb)`.execute(
      tx,
    );
    for (const row of rows) {
      const version = Number(row.o_version);
      versions.set(row.o_customer_id, version);
      events.push({
        topic: 'customer.entitlements_changed',
        customerId: row.o_customer_id,
        payload: { customer_id: row.o_customer_id, version },
      });
    }
    return value;
  });
  const committed = {
    environment: ctx.environment,
    customerIds: [...touched],
    topics: events.map((e) => e.topic),
    versions,
  };
  for (const listener of ctx.deps.commitListeners) {
    try {
      listener(committed);
    } catch (err) {
      ctx.deps.logger.error({ err }, 'commit listener failed');
    }
  }
  return result;
}

/** Reads use the transaction when there is one, the pool otherwise. */
export function reader(ctx: Ctx | TxCtx): Db | Tx {
  return isTxCtx(ctx) ? ctx.tx : ctx.deps.db;
}
