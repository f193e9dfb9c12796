import { randomBytes } from 'node:crypto';
import { type Selectable, sql } from 'kysely';
import { Webhook } from 'standardwebhooks';
import type { AppDeps, Ctx } from '../../platform/context.ts';
import { reader, requireScope, withTransaction } from '../../platform/context.ts';
import { NotFound, ValidationFailed } from '../../platform/errors.ts';
import { newId } from '../../platform/ids.ts';
import type { DispatchedEvent, DispatchRound } from '../../platform/outbox.ts';
import { decodeCursor, page } from '../../platform/pagination.ts';
import { SecretBox } from '../../platform/secret-box.ts';
import type { WebhookDeliveriesTable, WebhookEndpointsTable } from './tables.ts';
import { checkDeliveryTarget, urlProblem } from './url-rules.ts';

/** The public event types an endpoint may filter on. */
export const WEBHOOK_EVENT_TYPES = [
  'entitlements.updated',
  'subscription.created',
  'subscription.updated',
  'subscription.canceled',
  'usage.threshold_reached',
  'access_request.created',
  'access_request.approved',
  'access_request.denied',
  'access_request.applied',
  'review.created',
  'review.item_decided',
  'review.completed',
  'flag.raised',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** Outbox topics under another public name; the other public types are sent under their topic. */
const TOPIC_TYPES: Record<string, WebhookEventType> = {
  'customer.entitlements_changed': 'entitlements.updated',
};

export function publicTypeOf(topic: string): WebhookEventType | null {
  const mapped = TOPIC_TYPES[topic];
  if (mapped) return mapped;
  return (WEBHOOK_EVENT_TYPES as readonly string[]).includes(topic) ? (topic as WebhookEventType) : null;
}

/** First retry after 5 s, doubling, at most an hour apart; given up once 24 hours have passed. */
export const FIRST_RETRY_SECONDS = 5;
export const MAX_RETRY_SECONDS = 3600;
export const GIVE_UP_AFTER_SECONDS = 24 * 3600;
const LEASE_SECONDS = 60;
const SEND_TIMEOUT_MS = 10_000;

export function retryDelaySeconds(attempts: number): number {
  return Math.min(MAX_RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** Math.max(0, attempts - 1));
}

function box(deps: AppDeps): SecretBox {
  return new SecretBox(deps.secrets, 'webhook endpoint secrets');
}

export interface WebhookEndpoint {
  id: string;
  url: string;
  event_types: string[];
  description: string | null;
  created_at: string;
}

type EndpointRow = Omit<Selectable<WebhookEndpointsTable>, 'environment' | 'secret'>;

function toEndpoint(row: EndpointRow): WebhookEndpoint {
  return {
    id: row.id,
    url: row.url,
    event_types: row.event_types,
    description: row.description,
    created_at: row.created_at.toISOString(),
  };
}

export interface WebhookDelivery {
  id: string;
  endpoint_id: string;
  event_type: string;
  customer_id: string | null;
  payload: Record<string, unknown>;
  status: 'pending' | 'delivered' | 'failed';
  attempts: number;
  next_attempt_at: string | null;
  last_status: number | null;
  last_error: string | null;
  created_at: string;
  delivered_at: string | null;
}

type DeliveryRow = Selectable<WebhookDeliveriesTable>;

function toDelivery(row: DeliveryRow): WebhookDelivery {
  return {
    id: row.id,
    endpoint_id: row.endpoint_id,
    event_type: row.event_type,
    customer_id: row.customer_id,
    payload: row.payload,
    status: row.status,
    attempts: row.attempts,
    next_attempt_at: row.status === 'pending' ? row.next_attempt_at.toISOString() : null,
    last_status: row.last_status,
    last_error: row.last_error,
    created_at: row.created_at.toISOString(),
    delivered_at: row.delivered_at ? row.delivered_at.toISOString() : null,
  };
}

export async function createWebhookEndpoint(
  ctx: Ctx,
  input: { url: string; event_types?: string[] | undefined; description?: string | undefined },
): Promise<WebhookEndpoint & { secret: string }> {
  requireScope(ctx, 'admin');
  const problem = urlProblem(input.url, ctx.deps.config.webhooksAllowLoopback);
  if (problem) throw new ValidationFailed([{ path: 'url', message: problem }]);
  const eventTypes = [...new Set(input.event_types ?? [])];
  const secret = `whsec_${randomBytes(32).toString('base64')}`;
  return withTransaction(ctx, async (t) => {
    const id = newId('whe', t.now.getTime());
    const row = await t.tx
      .insertInto('webhook_endpoints')
      .values({
        id,
        environment: ctx.environment,
        url: input.url,
        event_types: JSON.stringify(eventTypes),
        description: input.description ?? null,
        secret: box(ctx.deps).seal(secret, id),
        created_at: t.now,
      })
      .returningAll()
      .executeTakeFirstOrThrow();
    const endpoint = toEndpoint(row);
    t.audit({
      action: 'webhook_endpoint.created',
      target: { type: 'webhook_endpoint', id },
      before: null,
      after: endpoint,
    });
    return { ...endpoint, secret };
  });
}

async function findEndpoint(ctx: Ctx, id: string): Promise<EndpointRow> {
  const row = await reader(ctx)
    .selectFrom('webhook_endpoints')
    .select(['id', 'url', 'event_types', 'description', 'created_at', 'disabled_at'])
    .where('environment', '=', ctx.environment)
    .where('id', '=', id)
    .where('disabled_at', 'is', null)
    .executeTakeFirst();
  if (!row) throw new NotFound('webhook_endpoint', id);
  return row;
}

export async function getWebhookEndpoint(ctx: Ctx, id: string): Promise<WebhookEndpoint> {
  requireScope(ctx, 'admin');
  return toEndpoint(await findEndpoint(ctx, id));
}

export async function listWebhookEndpoints(ctx: Ctx, query: { limit: number; cursor?: string | undefined }) {
  requireScope(ctx, 'admin');
  const after = decodeCursor<{ id: string }>(query.cursor, { id: 'string' });
  let q = reader(ctx)
    .selectFrom('webhook_endpoints')
    .select(['id', 'url', 'event_types', 'description', 'created_at', 'disabled_at'])
    .where('environment', '=', ctx.environment)
    .where('disabled_at', 'is', null);
  if (after) q = q.where('id', '>', after.id);
  const rows = await q
    .orderBy('id')
    .limit(query.limit + 1)
    .execute();
  return page(rows, query.limit, toEndpoint, (r) => ({ id: r.id }));
}

/** Disables the endpoint: it receives nothing more; its pending deliveries are failed. */
export async function deleteWebhookEndpoint(ctx: Ctx, id: string): Promise<WebhookEndpoint> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await findEndpoint(t, id);
    await t.tx.updateTable('webhook_endpoints').set({ disabled_at: t.now }).where('id', '=', id).execute();
    await t.tx
      .updateTable('webhook_deliveries')
      .set({ status: 'failed', last_error: 'endpoint deleted' })
      .where('endpoint_id', '=', id)
      .where('status', '=', 'pending')
      .execute();
    const endpoint = toEndpoint(before);
    t.audit({
      action: 'webhook_endpoint.deleted',
      target: { type: 'webhook_endpoint', id },
      before: endpoint,
      after: null,
    });
    return endpoint;
  });
}

export async function listWebhookDeliveries(
  ctx: Ctx,
  endpointId: string,
  query: { limit: number; cursor?: string | undefined },
) {
  requireScope(ctx, 'admin');
  await findEndpoint(ctx, endpointId);
  const after = decodeCursor<{ id: string }>(query.cursor, { id: 'string' });
  let q = reader(ctx).selectFrom('webhook_deliveries').selectAll().where('endpoint_id', '=', endpointId);
  if (after) q = q.where('id', '<', after.id);
  const rows = await q
    .orderBy('id', 'desc')
    .limit(query.limit + 1)
    .execute();
  return page(rows, query.limit, toDelivery, (r) => ({ id: r.id }));
}

/** Sends the delivery again, with the same `webhook-id`, at the worker's next round. */
export async function redeliverWebhook(
  ctx: Ctx,
  endpointId: string,
  deliveryId: string,
): Promise<WebhookDelivery> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    await findEndpoint(t, endpointId);
    const row = await t.tx
      .updateTable('webhook_deliveries')
      .set({ status: 'pending', next_attempt_at: t.now, delivered_at: null })
      .where('endpoint_id', '=', endpointId)
      .where('id', '=', deliveryId)
      .returningAll()
      .executeTakeFirst();
    if (!row) throw new NotFound('webhook_delivery', deliveryId);
    t.audit({
      action: 'webhook_delivery.redelivered',
      target: { type: 'webhook_delivery', id: deliveryId },
      before: null,
      after: { endpoint_id: endpointId },
    });
    return toDelivery(row);
  });
}

/**
 * Outbox handler: one delivery per endpoint of the event's environment whose filter takes the
 * event's public type. Its id is derived from the outbox event and the endpoint, so a repeated
 * dispatch (the outbox is at least once) adds nothing.
 */
export async function fanOutWebhooks(
  deps: AppDeps,
  event: DispatchedEvent,
  round: DispatchRound,
): Promise<void> {
  const type = publicTypeOf(event.topic);
  if (!type) return;
  // Read once per dispatch round and environment, not once per event.
  const endpoints = await round.memo(`webhook_endpoints:${event.environment}`, () =>
    deps.db
      .selectFrom('webhook_endpoints')
      .select(['id', 'event_types'])
      .where('environment', '=', event.environment)
      .where('disabled_at', 'is', null)
      .execute(),
  );
  const matching = endpoints.filter((e) => e.event_types.length === 0 || e.event_types.includes(type));
  if (matching.length === 0) return;
  const now = deps.clock.now();
  const body = { type, timestamp: event.createdAt.toISOString(), data: event.payload };
  await deps.db
    .insertInto('webhook_deliveries')
    .values(
      matching.map((e) => ({
        id: `msg_${event.id}_${e.id.slice(4)}`,
        endpoint_id: e.id,
        environment: event.environment,
        outbox_id: String(event.id),
        event_type: type,
        customer_id: event.customerId,
        payload: JSON.stringify(body),
        status: 'pending' as const,
        attempts: 0,
        next_attempt_at: now,
        created_at: now,
      })),
    )
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
}

interface Claimed {
  id: string;
  payload: Record<string, unknown>;
  attempts: number;
  created_at: Date;
  url: string;
  secret: string;
  endpoint_id: string;
}

/**
 * Sends due deliveries, signed per Standard Webhooks, in order per (endpoint, customer): a
 * delivery waits while an earlier one for the same endpoint and customer is pending. Time comes
 * from the injected clock, so tests advance a ManualClock and call `runOnce`.
 */
export class WebhookDeliveryWorker {
  private timer: NodeJS.Timeout | null = null;
  private round: Promise<unknown> | null = null;

  constructor(
    private readonly deps: () => AppDeps,
    private readonly options: { pollMs: number; batchSize?: number } = { pollMs: 1000 },
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.round) return;
      this.round = this.runOnce()
        .catch((err: unknown) => this.deps().logger.error({ err }, 'webhook delivery round failed'))
        .finally(() => {
          this.round = null;
        });
    }, this.options.pollMs);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.round;
  }

  /** Runs rounds until one finds nothing due (tests use this with a ManualClock). */
  async drain(maxRounds = 100): Promise<void> {
    for (let i = 0; i < maxRounds; i++) {
      if ((await this.runOnce()) === -1) return;
    }
  }

  /** One round: claims the due heads of line and sends them; returns how many were delivered, -1 if none was due. */
  async runOnce(): Promise<number> {
    const deps = this.deps();
    const now = deps.clock.now();
    const lease = new Date(now.getTime() + LEASE_SECONDS * 1000);
    const claimed = await sql<Claimed>`
      UPDATE webhook_deliveries d
         SET next_attempt_at = ${lease}, attempts = d.attempts + 1
        FROM webhook_endpoints ep
       WHERE ep.id = d.endpoint_id
         AND d.id IN (
           SELECT c.id FROM webhook_deliveries c
            WHERE c.status = 'pending' AND c.next_attempt_at <= ${now}
              AND NOT EXISTS (
                SELECT 1 FROM webhook_deliveries e
                 WHERE e.endpoint_id = c.endpoint_id
                   AND e.customer_id IS NOT DISTINCT FROM c.customer_id
                   AND e.status = 'pending' AND e.outbox_id < c.outbox_id)
            ORDER BY c.outbox_id LIMIT ${this.options.batchSize ?? 100}
            FOR UPDATE SKIP LOCKED)
      RETURNING d.id, d.payload, d.attempts, d.created_at, ep.url, ep.secret, ep.id AS endpoint_id`.execute(
      deps.db,
    );
    let delivered = 0;
    await Promise.all(
      claimed.rows.map(async (row) => {
        const outcome = await this.send(deps, row, now);
        if (outcome.ok) {
          delivered += 1;
          await deps.db
            .updateTable('webhook_deliveries')
            .set({ status: 'delivered', delivered_at: now, last_status: outcome.status, last_error: null })
            .where('id', '=', row.id)
            .execute();
          return;
        }
        const givenUp = now.getTime() - row.created_at.getTime() >= GIVE_UP_AFTER_SECONDS * 1000;
        await deps.db
          .updateTable('webhook_deliveries')
          .set({
            status: givenUp ? 'failed' : 'pending',
            next_attempt_at: new Date(now.getTime() + retryDelaySeconds(row.attempts) * 1000),
            last_status: outcome.status,
            last_error: outcome.error.slice(0, 2000),
          })
          .where('id', '=', row.id)
          .execute();
      }),
    );
    return claimed.rows.length === 0 ? -1 : delivered;
  }

  private async send(
    deps: AppDeps,
    row: Claimed,
    now: Date,
  ): Promise<{ ok: true; status: number } | { ok: false; status: number | null; error: string }> {
    try {
      const refused = await checkDeliveryTarget(row.url, deps.config.webhooksAllowLoopback);
      if (refused) return { ok: false, status: null, error: refused };
      const secret = box(deps).open(row.secret, row.endpoint_id);
      const body = JSON.stringify(row.payload);
      const signature = new Webhook(secret).sign(row.id, now, body);
      const res = await fetch(row.url, {
        method: 'POST',
        redirect: 'manual',
        signal: AbortSignal.timeout(SEND_TIMEOUT_MS),
        headers: {
          'content-type': 'application/json',
          'user-agent': 'Tessera-Webhooks/1',
          'webhook-id': row.id,
          'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
          'webhook-signature': signature,
        },
        body,
      });
      await res.body?.cancel();
      if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
      return { ok: false, status: res.status, error: `the endpoint answered ${res.status}` };
    } catch (err) {
      return { ok: false, status: null, error: err instanceof Error ? err.message : String(err) };
    }
  }
}
