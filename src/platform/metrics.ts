import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

/**
 * A count kept as a plain number and added to its Prometheus counter when the registry is read:
 * prom-client's `inc` hashes the labels and allocates on every call, which the hot routes (checks,
 * usage) would otherwise pay per request. `count` is the running total (readable by its owner).
 */
export class Tally {
  count = 0;
  /** How much of `count` its counter has been given. */
  added = 0;
  constructor(readonly labels: Readonly<Record<string, string>>) {}
  inc(): void {
    this.count += 1;
  }
}

/** Prometheus metrics of one process; each app instance owns its registry so tests do not collide. */
export class Metrics {
  readonly registry = new Registry();
  private readonly tallies = new Map<Counter<string>, Map<string, Tally>>();
  readonly httpRequests = this.tallied({
    name: 'tessera_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['method', 'route', 'status'] as const,
  });
  readonly httpDuration = new Histogram({
    name: 'tessera_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['method', 'route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly decisions = this.tallied({
    name: 'tessera_decisions_total',
    help: 'Entitlement decisions by outcome reason',
    labelNames: ['reason'] as const,
  });
  readonly outboxDispatched = new Counter({
    name: 'tessera_outbox_dispatched_total',
    help: 'Outbox events handed to their handlers',
    labelNames: ['topic', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly fastPath = this.tallied({
    name: 'tessera_fast_path_total',
    help: 'Hot-route requests answered on the node:http fast path, or handed to the full app',
    labelNames: ['route', 'outcome'] as const,
  });

  readonly counterCacheReads = this.tallied({
    name: 'tessera_counter_cache_reads_total',
    help: 'Counter readings for decisions answered from the per-process cache (hit) or by Redis (miss)',
    labelNames: ['outcome'] as const,
  });

  readonly snapshotLoads = this.tallied({
    name: 'tessera_snapshot_loads_total',
    help: 'Customer snapshot loads (decision cache misses) by where they read (primary, replica) and why',
    labelNames: ['source', 'reason'] as const,
  });

  readonly usageDeadLetters = new Counter({
    name: 'tessera_usage_dead_letters_total',
    help: 'Usage records the flusher set aside in usage_dead_letters instead of the ledger, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  private readonly decisionTallies = new Map<string, Tally>();

  /** Counts a decision (a map look-up and an addition; see `Tally`). */
  countDecision(reason: string): void {
    let tally = this.decisionTallies.get(reason);
    if (!tally) {
      tally = this.tally(this.decisions, { reason });
      this.decisionTallies.set(reason, tally);
    }
    tally.inc();
  }

  /**
   * The tally of one label set of a counter made by `tallied`; the same object for the same
   * labels. Keep it: looking it up costs a key per call.
   */
  tally<L extends string>(counter: Counter<L>, labels: Readonly<Record<L, string>>): Tally {
    const byLabels = this.tallies.get(counter as Counter<string>);
    if (!byLabels) throw new Error('this counter takes no tallies (make it with `tallied`)');
    const key = JSON.stringify(Object.entries(labels).sort());
    let tally = byLabels.get(key);
    if (!tally) {
      tally = new Tally(labels);
      byLabels.set(key, tally);
    }
    return tally;
  }

  constructor(defaults = false) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }

  /** A counter that also takes tallies, added to it whenever the registry is read. */
  private tallied<L extends string>(config: {
    name: string;
    help: string;
    labelNames: readonly L[];
  }): Counter<L> {
    const byLabels = new Map<string, Tally>();
    const counter: Counter<L> = new Counter<L>({
      ...config,
      registers: [this.registry],
      collect() {
        for (const tally of byLabels.values()) {
          if (tally.count === tally.added) continue;
          counter.inc(tally.labels as Partial<Record<L, string>>, tally.count - tally.added);
          tally.added = tally.count;
        }
      },
    });
    this.tallies.set(counter as Counter<string>, byLabels);
    return counter;
  }
}
