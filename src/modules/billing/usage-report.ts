/**
 * Usage out to Stripe: every ledger event (`usage_events`) of a feature linked to a Stripe meter
 * becomes one billing meter event (`POST /v1/billing/meter_events`), in ledger order, past a
 * per-environment cursor (`stripe_usage_reports.last_event_id`).
 *
 * Exactly once, across crashes: each event is sent with `identifier` (and Stripe idempotency key)
 * `tessera:<environment>:<ledger id>`, which Stripe dedupes for at least 24 hours, and the cursor
 * moves only past a prefix of events that Stripe confirmed (or refused for good), after each batch.
 * A crash between Stripe's answer and the cursor's update resends at most one batch, which Stripe
 * drops as duplicates.
 *
 * Stripe's limits: `timestamp` is the event's time clamped into Stripe's window (no older than 35
 * days, not in the future); a 429 waits for `Retry-After` (else backs off exponentially), a 5xx or a
 * network failure (or a 401/403) backs off; after `maxAttempts` the run stops at the last confirmed
 * prefix and the next run resumes there. A 400, 402, 404, 409 or 422 (say, a Stripe customer deleted
 * in Stripe) will not succeed by repeating: it is logged and counted as `rejected`, and the cursor
 * moves on.
 * Events of customers without a Stripe customer id are skipped (counted), as are features
 * without a meter.
 *
 * Ledger ids are assigned when a row is inserted, so a slow transaction can commit a lower id after
 * a higher one is visible: only rows recorded `settleSeconds` ago (by the database clock) are read.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from 'kysely';
import Stripe from 'stripe';
import type { AppDeps } from '../../platform/context.ts';
import { stripeClient, stripeConnection } from './settings.ts';

const DAY_MS = 86_400_000;
/** Stripe accepts meter events up to 35 days old; a margin keeps a slow request inside it. */
const OLDEST_MS = 35 * DAY_MS - 10 * 60_000;

export interface UsageReportOptions {
  /** Ledger rows read per batch (default 100). */
  batchSize?: number;
  /** Meter events in flight at once (default 8). */
  concurrency?: number;
  /** Tries per event in one run before the run stops (default 5). */
  maxAttempts?: number;
  /** Only rows recorded at least this long ago (default 30). */
  settleSeconds?: number;
  /** Waits between retries (tests record them instead of sleeping). */
  wait?: (ms: number) => Promise<void>;
}

export interface UsageReportRun {
  /** Meter events Stripe confirmed. */
  sent: number;
  /** Events of customers without a Stripe customer id. */
  skipped: number;
  /** Events Stripe refused for good (a 4xx other than 429). */
  rejected: number;
  /** True when a run stopped early on repeated 429/5xx/network failures. */
  interrupted: boolean;
}

interface LedgerEvent {
  id: number;
  customer_id: string;
  value: number;
  occurred_at: Date;
  stripe_customer_id: string | null;
  event_name: string | null;
}

type Outcome = 'sent' | 'rejected' | 'failed';

export function meterTimestamp(occurredAt: Date, now: Date): number {
  const ms = Math.min(Math.max(occurredAt.getTime(), now.getTime() - OLDEST_MS), now.getTime());
  return Math.floor(ms / 1000);
}

/** Refusals that repeating will not change; everything else (401, 403, 429, 5xx, network) is retried. */
const FINAL_STATUSES = new Set([400, 402, 404, 409, 422]);

/** How long to wait before trying again, or null when Stripe refused the event for good. */
function retryDelayMs(err: unknown, attempt: number): number | null {
  const backoff = Math.min(500 * 2 ** attempt, 30_000);
  if (!(err instanceof Stripe.errors.StripeError)) return backoff;
  if (err.statusCode !== undefined && FINAL_STATUSES.has(err.statusCode)) return null;
  const header = err.headers?.['retry-after'];
  const seconds = header === undefined ? Number.NaN : Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.min(seconds * 1000, 60_000);
  return backoff;
}

export class StripeUsageReporter {
  constructor(
    private readonly deps: AppDeps,
    private readonly options: UsageReportOptions = {},
  ) {}

  /** One pass over every environment connected to Stripe. */
  async runOnce(): Promise<UsageReportRun> {
    const total: UsageReportRun = { sent: 0, skipped: 0, rejected: 0, interrupted: false };
    const environments = await this.deps.db
      .selectFrom('stripe_settings')
      .select('environment')
      .where('secret_key', 'is not', null)
      .execute();
    for (const { environment } of environments) {
      try {
        const run = await this.reportEnvironment(environment);
        total.sent += run.sent;
        total.skipped += run.skipped;
        total.rejected += run.rejected;
        total.interrupted ||= run.interrupted;
      } catch (err) {
        total.interrupted = true;
        this.deps.logger.error({ err, environment }, 'could not report usage to Stripe');
      }
    }
    return total;
  }

  async reportEnvironment(environment: string): Promise<UsageReportRun> {
    const run: UsageReportRun = { sent: 0, skipped: 0, rejected: 0, interrupted: false };
    const connection = await stripeConnection(this.deps, this.deps.db, environment);
    if (!connection?.secretKey) return run;
    const client = stripeClient(connection.secretKey, this.deps.config.stripeApiBase);
    let cursor = await this.cursor(environment);
    for (;;) {
      const events = await this.nextEvents(environment, cursor);
      if (events.length === 0) return run;
      const outcomes = await this.sendBatch(client, environment, events, run);
      // The cursor moves past the confirmed prefix only: what follows a failure is sent again.
      let confirmed = cursor;
      for (const [i, event] of events.entries()) {
        if (outcomes[i] === 'failed') break;
        confirmed = event.id;
      }
      if (confirmed !== cursor) {
        await this.saveCursor(environment, confirmed);
        cursor = confirmed;
      }
      if (outcomes.includes('failed')) {
        run.interrupted = true;
        return run;
      }
    }
  }

  private async cursor(environment: string): Promise<number> {
    const row = await this.deps.db
      .selectFrom('stripe_usage_reports')
      .select('last_event_id')
      .where('environment', '=', environment)
      .executeTakeFirst();
    return Number(row?.last_event_id ?? 0);
  }

  private async saveCursor(environment: string, lastEventId: number): Promise<void> {
    const now = this.deps.clock.now();
    await this.deps.db
      .insertInto('stripe_usage_reports')
      .values({ environment, last_event_id: lastEventId, updated_at: now })
      .onConflict((oc) =>
        oc.column('environment').doUpdateSet({
          // Never backwards, should two reporters overlap.
          last_event_id: sql<number>`greatest(stripe_usage_reports.last_event_id, excluded.last_event_id)`,
          updated_at: now,
        }),
      )
      .execute();
  }

  private async nextEvents(environment: string, after: number): Promise<LedgerEvent[]> {
    const settle = this.options.settleSeconds ?? 30;
    const rows = await this.deps.db
      .selectFrom('usage_events as u')
      .leftJoin('features as f', (j) =>
        j.onRef('f.environment', '=', 'u.environment').onRef('f.key', '=', 'u.feature'),
      )
      .leftJoin('customers as c', (j) =>
        j.onRef('c.environment', '=', 'u.environment').onRef('c.customer_id', '=', 'u.customer_id'),
      )
      .select([
        'u.id',
        'u.customer_id',
        'u.value',
        'u.occurred_at',
        'c.stripe_customer_id',
        sql<string | null>`f.stripe_meter->>'event_name'`.as('event_name'),
      ])
      .where('u.environment', '=', environment)
      .where('u.id', '>', after)
      .where(sql<boolean>`u.recorded_at <= now() - make_interval(secs => ${settle})`)
      .orderBy('u.id')
      .limit(this.options.batchSize ?? 100)
      .execute();
    return rows.map((r) => ({ ...r, id: Number(r.id), value: Number(r.value) }));
  }

  private async sendBatch(
    client: Stripe,
    environment: string,
    events: LedgerEvent[],
    run: UsageReportRun,
  ): Promise<Outcome[]> {
    const outcomes: Outcome[] = new Array(events.length).fill('sent');
    let next = 0;
    let stop = false;
    const worker = async () => {
      while (!stop && next < events.length) {
        const i = next++;
        const event = events[i] as LedgerEvent;
        if (!event.event_name) continue; // no meter: nothing to report
        if (!event.stripe_customer_id) {
          run.skipped += 1;
          continue;
        }
        outcomes[i] = await this.send(client, environment, event, event.event_name, event.stripe_customer_id);
        if (outcomes[i] === 'sent') run.sent += 1;
        if (outcomes[i] === 'rejected') run.rejected += 1;
        // Later events would only be sent again: stop taking new ones.
        if (outcomes[i] === 'failed') stop = true;
      }
    };
    const concurrency = Math.max(1, this.options.concurrency ?? 8);
    await Promise.all(Array.from({ length: Math.min(concurrency, events.length) }, worker));
    // Events never taken after a failure count as not confirmed.
    for (let i = next; i < events.length; i++) outcomes[i] = 'failed';
    return outcomes;
  }

  private async send(
    client: Stripe,
    environment: string,
    event: LedgerEvent,
    eventName: string,
    stripeCustomerId: string,
  ): Promise<Outcome> {
    const identifier = `tessera:${environment}:${event.id}`;
    const maxAttempts = this.options.maxAttempts ?? 5;
    for (let attempt = 0; ; attempt++) {
      try {
        await client.billing.meterEvents.create(
          {
            event_name: eventName,
            payload: { stripe_customer_id: stripeCustomerId, value: String(event.value) },
            identifier,
            timestamp: meterTimestamp(event.occurred_at, this.deps.clock.now()),
          },
          // Retries are ours (Retry-After, backoff); the key makes a resend within 24 h a replay.
          { idempotencyKey: identifier, maxNetworkRetries: 0 },
        );
        return 'sent';
      } catch (err) {
        const delay = retryDelayMs(err, attempt);
        if (delay === null) {
          this.deps.logger.warn({ err, environment, eventId: event.id }, 'Stripe refused a meter event');
          return 'rejected';
        }
        if (attempt + 1 >= maxAttempts) {
          this.deps.logger.warn(
            { err, environment, eventId: event.id },
            'Stripe meter events failing; will resume',
          );
          return 'failed';
        }
        await (this.options.wait ?? ((ms: number) => sleep(ms)))(delay);
      }
    }
  }
}
