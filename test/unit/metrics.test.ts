import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/platform/metrics.ts';

describe('metric tallies', () => {
  it('are added to their counter whenever the registry is read, once each', async () => {
    const metrics = new Metrics();
    const served = metrics.tally(metrics.fastPath, { route: '/v1/check', outcome: 'served' });
    expect(metrics.tally(metrics.fastPath, { outcome: 'served', route: '/v1/check' })).toBe(served);
    for (let i = 0; i < 3; i++) served.inc();
    metrics.countDecision('granted');
    metrics.countDecision('granted');
    // A counter may take direct increments beside its tallies (the app's routes do).
    metrics.httpRequests.inc({ method: 'GET', route: '/v1/features', status: '200' });
    const first = await metrics.registry.metrics();
    expect(first).toContain('tessera_fast_path_total{route="/v1/check",outcome="served"} 3');
    expect(first).toContain('tessera_decisions_total{reason="granted"} 2');
    expect(first).toContain('tessera_http_requests_total{method="GET",route="/v1/features",status="200"} 1');
    served.inc();
    const second = await metrics.registry.metrics();
    expect(second).toContain('tessera_fast_path_total{route="/v1/check",outcome="served"} 4');
    expect(second).toContain('tessera_decisions_total{reason="granted"} 2');
  });

  it('refuses a counter that does not take tallies', () => {
    const metrics = new Metrics();
    expect(() => metrics.tally(metrics.outboxDispatched, { topic: 'x', outcome: 'ok' })).toThrow();
  });
});
