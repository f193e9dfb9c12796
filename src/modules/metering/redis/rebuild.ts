/**
 * The ledger is the source of truth: this rebuilds Redis's counters, credit use, distinct members,
 * live holds and recent idempotency answers from Postgres. It runs from `tessera usage rebuild`,
 * and from counter-recovery.ts at start-up when Redis's marker does not match the ledger's (Redis
 * lost its data or is another instance) and whenever Redis loses its data while running. Pending stream entries are flushed into the ledger first, so nothing Redis
 * still holds is lost. Counters are overwritten, not added to, so a rebuild can run twice.
 */

import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import type { Db } from '../../../platform/db.ts';
import { randomToken } from '../../../platform/ids.ts';
import { KeyedPipelines } from '../../../platform/redis.ts';
import { type AnswerJson, answerFromJson } from '../answer.ts';
import { ledgerTotals } from '../ledger/ledger.ts';
import type { FlushOptions, RebuildReport, StoredPeriod } from '../store.ts';
import type { UsageKeys } from './keys.ts';
import { encodeAnswer } from './wire.ts';

const MARKER = 'redis_marker';
const CUSTOMERS_PER_ROUND = 500;

/** What a rebuild needs of the Redis store (the store itself: see store.ts). */
export interface RebuildTarget {
  readonly redis: Redis;
  readonly db: Db;
  readonly keys: UsageKeys;
  readonly options: { retentionMs: number; exactMembers: number; idempotencyTtlMs: number };
  flush(options?: FlushOptions): Promise<number>;
  ttlOf(period: StoredPeriod, now: Date): number;
}

export async function rebuildFromLedger(store: RebuildTarget, now: Date): Promise<RebuildReport> {
  await store.flush({ claimIdleMs: 0 });
  const db = store.db;
  const since = new Date(now.getTime() - store.options.retentionMs);
  const report: RebuildReport = { counters: 0, answers: 0, holds: 0 };
  const customers = await sql<{ environment: string; customer_id: string }>`
    SELECT DISTINCT environment, customer_id FROM usage_events
    UNION SELECT DISTINCT environment, customer_id FROM reservations WHERE status = 'held'
    ORDER BY 1, 2`.execute(db);
  for (let i = 0; i < customers.rows.length; i += CUSTOMERS_PER_ROUND) {
    const round = customers.rows.slice(i, i + CUSTOMERS_PER_ROUND);
    // A row-value IN list, which Kysely's builder has no typed form for.
    const match = sql<boolean>`(environment, customer_id) IN (${sql.join(
      round.map((c) => sql`(${c.environment}, ${c.customer_id})`),
    )})`;
    // On a cluster, one pipeline per node that serves the keys.
    const pipeline = new KeyedPipelines(store.redis);
    const { keys } = store;
    const base = (env: string, customer: string) => keys.customer(env, customer);

    for (const t of await ledgerTotals(store.db, since, undefined, match)) {
      const period = { start: t.periodStart, end: t.periodEnd };
      const key = keys.counter(base(t.environment, t.customerId), t.feature, period);
      pipeline.add(key, (p) => p.hset(key, 'u', t.counted, 'o', t.overage, 'cr', t.credit, 'h', 0));
      const ttl = store.ttlOf(period, now);
      if (ttl > 0) pipeline.add(key, (p) => p.pexpire(key, ttl));
      report.counters += 1;
    }

    const credit = await sql<{
      environment: string;
      customer_id: string;
      feature: string;
      grant_id: string;
      used: number;
    }>`
      SELECT environment, customer_id, feature, d.key AS grant_id, sum(d.value::numeric) AS used
      FROM usage_events, jsonb_each_text(credit_draws) AS d
      WHERE ${match} GROUP BY 1, 2, 3, 4`.execute(db);
    for (const c of credit.rows) {
      const key = keys.credit(base(c.environment, c.customer_id), c.feature);
      pipeline.add(key, (p) => p.hset(key, c.grant_id, Number(c.used)));
    }

    const members = await sql<{
      environment: string;
      customer_id: string;
      feature: string;
      period_start: Date;
      period_end: Date | null;
      member: string;
      n: number;
    }>`
      SELECT environment, customer_id, feature, period_start, period_end, member,
             row_number() OVER (PARTITION BY environment, customer_id, feature, period_start ORDER BY min(id)) AS n
      FROM usage_events
      WHERE ${match} AND member IS NOT NULL AND counted > 0 AND (period_end IS NULL OR period_end > ${since})
      GROUP BY 1, 2, 3, 4, 5, 6`.execute(db);
    for (const m of members.rows) {
      const period = { start: m.period_start, end: m.period_end };
      const b = base(m.environment, m.customer_id);
      const exact = Number(m.n) <= store.options.exactMembers;
      const key = exact ? keys.members(b, m.feature, period) : keys.sketch(b, m.feature, period);
      pipeline.add(key, (p) => (exact ? p.sadd(key, m.member) : p.pfadd(key, m.member)));
      const ttl = store.ttlOf(period, now);
      if (ttl > 0) pipeline.add(key, (p) => p.pexpire(key, ttl));
    }

    const holds = await db
      .selectFrom('reservations')
      .selectAll()
      .where(match)
      .where('status', '=', 'held')
      .where('expires_at', '>', now)
      .execute();
    const held = new Map<string, number>();
    for (const r of holds) {
      const period = { start: r.period_start, end: r.period_end };
      const b = base(r.environment, r.customer_id);
      const counter = keys.counter(b, r.feature, period);
      held.set(counter, (held.get(counter) ?? 0) + r.amount);
      const holds = keys.holds(b, r.feature, period);
      pipeline.add(holds, (p) => p.zadd(holds, r.expires_at.getTime(), `${r.id}|${r.amount}`));
      const state = keys.reservationState(b, r.id);
      pipeline.add(state, (p) =>
        p.set(state, 'h', 'PX', r.expires_at.getTime() - now.getTime() + 8 * 86_400_000),
      );
      report.holds += 1;
    }
    for (const [counter, amount] of held) pipeline.add(counter, (p) => p.hset(counter, 'h', amount));

    const ttl = store.options.idempotencyTtlMs;
    const recent = await db
      .selectFrom('usage_events')
      .select(['environment', 'customer_id', 'idempotency_key', 'answer', 'recorded_at'])
      .where(match)
      .where('recorded_at', '>', new Date(now.getTime() - ttl))
      .execute();
    for (const e of recent) {
      // `recorded_at` is the database's stamp, on the same (system) clock as `now` in production.
      const left = Math.min(ttl, ttl - (now.getTime() - e.recorded_at.getTime()));
      if (left <= 0) continue;
      const answer = encodeAnswer(answerFromJson(e.answer as unknown as AnswerJson));
      const key = keys.idempotency(base(e.environment, e.customer_id), e.idempotency_key);
      pipeline.add(key, (p) => p.set(key, answer, 'PX', left));
      report.answers += 1;
    }
    await pipeline.exec();
  }
  return report;
}

/** The ledger's marker, made on first use. */
export async function ledgerMarker(store: { readonly db: Db }): Promise<string> {
  const db = store.db;
  await db
    .insertInto('metering_state')
    .values({ key: MARKER, value: randomToken(24) })
    .onConflict((oc) => oc.column('key').doNothing())
    .execute();
  const row = await db
    .selectFrom('metering_state')
    .select('value')
    .where('key', '=', MARKER)
    .executeTakeFirstOrThrow();
  return row.value;
}
