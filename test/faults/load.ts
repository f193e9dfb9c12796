import { ADMIN, sleep } from './cluster.ts';

/**
 * Clients that keep calling a Tessera server while a fault happens under it, and write down every
 * answer. What a client may see during a fault: the right answer, or 503 problem+json with
 * Retry-After. Anything else (a 500, another 5xx, a 503 without Retry-After, a connection error) is
 * an anomaly the tests show in their failure message.
 */
export interface Anomaly {
  at: number;
  route: string;
  what: string;
}

export interface Answers {
  /** Accepted usage events: idempotency key -> [value, when the client saw it accepted]. */
  accepted: Map<string, { value: number; at: number }>;
  /** Events the server refused (`accepted: false`), by reason. */
  refused: Map<string, number>;
  /** Answers per route and status ("check 200", "usage 503", ...). */
  statuses: Map<string, number>;
  /** Checks answered `allowed: true` for a customer that is over its quota. */
  wrongAllows: Array<{ at: number; customer: string; body: unknown }>;
  anomalies: Anomaly[];
  /** When an answer of each route last came back 200 (ms since the epoch). */
  lastOk: Map<string, number>;
  sent: number;
}

export function newAnswers(): Answers {
  return {
    accepted: new Map(),
    refused: new Map(),
    statuses: new Map(),
    wrongAllows: [],
    anomalies: [],
    lastOk: new Map(),
    sent: 0,
  };
}

const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

/**
 * A 503 must be problem+json with a numeric Retry-After; returns the anomaly text if it is not.
 */
async function retryable(res: Response): Promise<string | null> {
  const retryAfter = res.headers.get('retry-after');
  const type = res.headers.get('content-type') ?? '';
  const body = await res.text();
  if (!retryAfter || !/^\d+$/.test(retryAfter)) return `503 without Retry-After: ${body}`;
  if (!type.startsWith('application/problem+json')) return `503 not problem+json (${type}): ${body}`;
  return null;
}

async function post(base: string, route: string, body: unknown): Promise<Response> {
  return fetch(`${base}${route}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
}

interface UsageEvent {
  customer_id: string;
  feature: string;
  value: number;
  idempotency_key: string;
}

export interface Load {
  answers: Answers;
  /** Stops the clients and waits for their last requests. */
  stop(): Promise<void>;
}

export interface LoadOptions {
  base: () => string;
  /** Customers with a big quota: their events are accepted (or 503 during a fault). */
  customers: string[];
  /** A customer already at its hard limit: every event is refused, every metered check is denied. */
  overQuota: string;
  keyPrefix: string;
  usageClients?: number;
  checkClients?: number;
  batchSize?: number;
  /** Pause between a client's requests. */
  pauseMs?: number;
}

/**
 * Usage clients send batches (one event of the over-quota customer in each) and, like a real
 * client, send a batch answered 503 again with the same idempotency keys; check clients ask for
 * the metered feature and the boolean one, of the big customers and of the over-quota one.
 */
export function startLoad(options: LoadOptions): Load {
  const answers = newAnswers();
  let running = true;
  let n = 0;
  const { customers, overQuota, keyPrefix } = options;
  const batchSize = options.batchSize ?? 20;
  const pause = options.pauseMs ?? 5;

  const anomaly = (route: string, what: string) => answers.anomalies.push({ at: Date.now(), route, what });

  const usageClient = async () => {
    let pending: UsageEvent[] | null = null;
    while (running) {
      const events: UsageEvent[] =
        pending ??
        Array.from({ length: batchSize }, (_, i) => {
          const k = n++;
          return {
            customer_id: i === 0 ? overQuota : customers[k % customers.length]!,
            feature: 'calls',
            value: 1 + (k % 3),
            idempotency_key: `${keyPrefix}${k}`,
          };
        });
      pending = null;
      answers.sent += events.length;
      let res: Response;
      try {
        res = await post(options.base(), '/v1/usage/batch', { events });
      } catch (err) {
        anomaly('usage', `connection error: ${(err as Error).cause ?? (err as Error).message}`);
        pending = events;
        await sleep(100);
        continue;
      }
      bump(answers.statuses, `usage ${res.status}`);
      if (res.status === 200) {
        answers.lastOk.set('usage', Date.now());
        const body = (await res.json()) as { results: Array<{ accepted: boolean; reason?: string }> };
        const at = Date.now();
        body.results.forEach((r, i) => {
          const e = events[i]!;
          if (r.accepted) {
            if (e.customer_id === overQuota)
              anomaly('usage', `over-quota event accepted: ${e.idempotency_key}`);
            answers.accepted.set(e.idempotency_key, { value: e.value, at });
          } else bump(answers.refused, r.reason ?? 'unknown');
        });
      } else if (res.status === 503) {
        const wrong = await retryable(res);
        if (wrong) anomaly('usage', wrong);
        pending = events; // retried with the same keys
        await sleep(100);
      } else {
        anomaly('usage', `${res.status}: ${await res.text()}`);
        await sleep(100);
      }
      await sleep(pause);
    }
  };

  const checkClient = async (id: number) => {
    let k = id;
    while (running) {
      const overCheck = k % 3 === 0;
      const customer = overCheck ? overQuota : customers[k % customers.length]!;
      const feature = k % 2 === 0 ? 'calls' : 'sso';
      const route = `check ${feature}`;
      k++;
      let res: Response;
      try {
        res = await post(options.base(), '/v1/check', { customer_id: customer, feature });
      } catch (err) {
        anomaly(route, `connection error: ${(err as Error).cause ?? (err as Error).message}`);
        await sleep(100);
        continue;
      }
      bump(answers.statuses, `${route} ${res.status}`);
      if (res.status === 200) {
        answers.lastOk.set(route, Date.now());
        const body = (await res.json()) as { allowed: boolean; reason: string };
        if (feature === 'calls' && customer === overQuota && body.allowed)
          answers.wrongAllows.push({ at: Date.now(), customer, body });
        else if (feature === 'calls' && customer === overQuota && body.reason !== 'limit_exceeded')
          anomaly(route, `over-quota check answered ${JSON.stringify(body)}`);
        else if (customer !== overQuota && !body.allowed)
          anomaly(route, `check of ${customer} denied: ${JSON.stringify(body)}`);
        else if (feature === 'sso' && !body.allowed) anomaly(route, `sso denied: ${JSON.stringify(body)}`);
      } else if (res.status === 503) {
        const wrong = await retryable(res);
        if (wrong) anomaly(route, wrong);
        await sleep(100);
      } else {
        anomaly(route, `${res.status}: ${await res.text()}`);
        await sleep(100);
      }
      await sleep(pause);
    }
  };

  const clients = [
    ...Array.from({ length: options.usageClients ?? 3 }, () => usageClient()),
    ...Array.from({ length: options.checkClients ?? 2 }, (_, i) => checkClient(i)),
  ];
  return {
    answers,
    async stop() {
      running = false;
      await Promise.all(clients);
    },
  };
}

/** A compact summary for failure messages. */
export function summary(answers: Answers): string {
  return JSON.stringify({
    statuses: Object.fromEntries(answers.statuses),
    refused: Object.fromEntries(answers.refused),
    accepted: answers.accepted.size,
    anomalies: answers.anomalies.slice(0, 10),
    wrongAllows: answers.wrongAllows.slice(0, 5),
  });
}
