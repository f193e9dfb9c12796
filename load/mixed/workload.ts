/**
 * The mixed workload: each request picks its operation by weight and a random customer as it is
 * sent (autocannon's `setupRequest`), so the mix holds at every moment of the run whatever each
 * operation's speed. 90% checks (boolean and metered features), 8% usage events, 2% admin writes
 * (an override, or a change of plan).
 *
 * Latency per operation: autocannon reports a response with the connection that carried it, and a
 * connection (no pipelining) has one request in flight, so the operation is read from that
 * connection's context, where `setupRequest` put it.
 */
import autocannon from 'autocannon';
import type { Subscriptions } from './seed.ts';
import { weightedPick } from './stats.ts';

export const OPS = [
  'check_boolean',
  'check_metered',
  'usage',
  'admin_override',
  'admin_plan_change',
] as const;
export type Op = (typeof OPS)[number];
export const WEIGHTS: Record<Op, number> = {
  check_boolean: 45,
  check_metered: 45,
  usage: 8,
  admin_override: 1,
  admin_plan_change: 1,
};
export const isCheck = (op: Op) => op === 'check_boolean' || op === 'check_metered';

const BOOLEAN_FEATURES = ['sso', 'audit_log'];
const METERED_FEATURES = ['api_calls', 'seats', 'storage'];
/** Every feature the mix checks (the warm-up asks each customer about each). */
export const CHECKED_FEATURES: readonly string[] = [...BOOLEAN_FEATURES, ...METERED_FEATURES];
const PLANS = ['free', 'pro', 'enterprise'];

export interface Call {
  op: Op;
  method: 'POST';
  path: string;
  body: string;
  key: string;
}

/**
 * Makes the run's requests. Plan changes walk the customers in a shuffled order (two changes of
 * one subscription are then far apart) and move each to another plan than the one it is on.
 */
export class Mix {
  private readonly weights = OPS.map((op) => WEIGHTS[op]);
  private usageSeq = 0;
  private changeCursor = 0;
  private readonly order: Uint32Array;
  private readonly runId = Date.now().toString(36);

  constructor(
    private readonly customers: number,
    private readonly subscriptions: Subscriptions,
    private readonly keys: { check: string; admin: string },
  ) {
    this.order = Uint32Array.from({ length: customers }, (_, i) => i);
    for (let i = customers - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [this.order[i], this.order[j]] = [this.order[j]!, this.order[i]!];
    }
  }

  next(): Call {
    const op = OPS[weightedPick(this.weights, Math.random())]!;
    const customer = `cust-${Math.floor(Math.random() * this.customers)}`;
    const pick = <T>(list: readonly T[]) => list[Math.floor(Math.random() * list.length)]!;
    switch (op) {
      case 'check_boolean':
      case 'check_metered':
        return {
          op,
          method: 'POST',
          path: '/v1/check',
          body: JSON.stringify({
            customer_id: customer,
            feature: pick(op === 'check_boolean' ? BOOLEAN_FEATURES : METERED_FEATURES),
          }),
          key: this.keys.check,
        };
      case 'usage':
        return {
          op,
          method: 'POST',
          path: '/v1/usage',
          body: JSON.stringify({
            customer_id: customer,
            feature: 'api_calls',
            value: 1,
            idempotency_key: `load-${this.runId}-${this.usageSeq++}`,
          }),
          key: this.keys.check,
        };
      case 'admin_override':
        return {
          op,
          method: 'POST',
          path: `/v1/customers/${customer}/overrides`,
          body: JSON.stringify({
            feature: pick(BOOLEAN_FEATURES),
            enabled: true,
            expires_at: new Date(Date.now() + 86_400_000).toISOString(),
            reason: 'load test exception',
          }),
          key: this.keys.admin,
        };
      case 'admin_plan_change': {
        const i = this.order[this.changeCursor++ % this.customers]!;
        const current = this.subscriptions.plans[i] ?? 'free';
        const plan = pick(PLANS.filter((p) => p !== current));
        this.subscriptions.plans[i] = plan;
        return {
          op,
          method: 'POST',
          path: `/v1/subscriptions/${this.subscriptions.ids[i]}/change`,
          body: JSON.stringify({ plan, timing: 'immediate' }),
          key: this.keys.admin,
        };
      }
    }
  }
}

/**
 * Statuses and latencies per operation, the latencies kept in per-second buckets (the whole run's
 * figures are computed from the same buckets, so each latency is stored once).
 */
export class Recorder {
  readonly statuses = new Map<Op, Map<number, number>>();
  readonly bySecond = new Map<Op, Map<number, number[]>>();
  private readonly began = performance.now();

  record(op: Op, status: number, ms: number): void {
    const second = Math.floor((performance.now() - this.began) / 1000);
    const byStatus = this.statuses.get(op) ?? new Map<number, number>();
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    this.statuses.set(op, byStatus);
    if (status < 200 || status >= 300) return;
    // Latency figures are of answered requests (2xx), as autocannon's own are.
    const seconds = this.bySecond.get(op) ?? new Map<number, number[]>();
    if (seconds.size === 0) this.bySecond.set(op, seconds);
    const bucket = seconds.get(second) ?? [];
    if (bucket.length === 0) seconds.set(second, bucket);
    bucket.push(ms);
  }

  /** Every 2xx latency of an operation over the run. */
  latenciesOf(op: Op): number[] {
    return [...(this.bySecond.get(op)?.values() ?? [])].flat();
  }

  count(op: Op): number {
    let n = 0;
    for (const c of this.statuses.get(op)?.values() ?? []) n += c;
    return n;
  }
}

export interface DriveResult {
  recorder: Recorder;
  seconds: number;
  /** Connection errors and timeouts (no status to attribute). */
  errors: number;
  timeouts: number;
  total: number;
}

/**
 * Closed-loop load at full speed: `connections` connections, each sending its next request as soon
 * as the last is answered, for `duration` seconds.
 */
export async function driveMix(options: {
  baseUrl: string;
  connections: number;
  /** Seconds at most. */
  duration: number;
  /** Ends the run early once this answers true (looked at after each answer). */
  until?: () => boolean;
  next: () => Call;
}): Promise<DriveResult> {
  const recorder = new Recorder();
  const began = performance.now();
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.baseUrl,
        connections: options.connections,
        duration: options.duration,
        requests: [
          {
            setupRequest: (req: autocannon.Request, context: object) => {
              const call = options.next();
              (context as { op?: Op }).op = call.op;
              req.method = call.method;
              req.path = call.path;
              req.body = call.body;
              req.headers = { 'content-type': 'application/json', authorization: `Bearer ${call.key}` };
              return req;
            },
          },
        ],
      },
      (err, done) => (err ? reject(err) : resolve(done)),
    );
    instance.on('response', (client, status, _bytes, ms) => {
      const context = (client as unknown as { requestIterator: { context: { op?: Op } } }).requestIterator
        .context;
      if (context.op) recorder.record(context.op, status, ms);
      if (options.until?.()) instance.stop();
    });
  });
  return {
    recorder,
    seconds: (performance.now() - began) / 1000,
    errors: result.errors,
    timeouts: result.timeouts,
    total: result.requests.total,
  };
}

/** One request as raw HTTP/1.1 bytes, for the open-loop generator. */
export function rawRequest(call: Call, host: string): Buffer {
  return Buffer.from(
    `${call.method} ${call.path} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/json\r\nAuthorization: Bearer ${call.key}\r\nContent-Length: ${Buffer.byteLength(call.body)}\r\n\r\n${call.body}`,
  );
}
