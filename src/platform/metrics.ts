import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/** Prometheus metrics of one process; each app instance owns its registry so tests do not collide. */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: 'tessera_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'tessera_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['method', 'route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly decisions = new Counter({
    name: 'tessera_decisions_total',
    help: 'Entitlement decisions by outcome reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly outboxDispatched = new Counter({
    name: 'tessera_outbox_dispatched_total',
    help: 'Outbox events handed to their handlers',
    labelNames: ['topic', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly fastPath = new Counter({
    name: 'tessera_fast_path_total',
    help: 'Hot-route requests answered on the node:http fast path, or handed to the full app',
    labelNames: ['route', 'outcome'] as const,
    registers: [this.registry],
  });

  private readonly decisionChildren = new Map<string, { inc(): void }>();

  /** Counts a decision; the labelled child is kept so the hot path does no label hashing. */
  countDecision(reason: string): void {
    let child = this.decisionChildren.get(reason);
    if (!child) {
      child = this.decisions.labels({ reason });
      this.decisionChildren.set(reason, child);
    }
    child.inc();
  }

  constructor(defaults = false) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }
}
