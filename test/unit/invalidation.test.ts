import { describe, expect, it } from 'vitest';
import { SnapshotCache } from '../../src/modules/entitlements/cache.ts';
import { InvalidationBus } from '../../src/modules/entitlements/invalidation.ts';
import { createLogger } from '../../src/platform/logger.ts';
import type { DispatchedEvent, OutboxDispatcher, OutboxHandler } from '../../src/platform/outbox.ts';
import { snapshot } from '../domain/builders.ts';

/** The outbox handlers the bus registers, captured without a database. */
function handlersOf(bus: InvalidationBus): Map<string, OutboxHandler> {
  const handlers = new Map<string, OutboxHandler>();
  const dispatcher = { on: (topic: string, handler: OutboxHandler) => handlers.set(topic, handler) };
  bus.register(dispatcher as unknown as OutboxDispatcher);
  return handlers;
}

function changed(customerId: string, version: number): DispatchedEvent {
  return {
    id: 1,
    environment: 'test',
    customerId,
    topic: 'customer.entitlements_changed',
    payload: { customer_id: customerId, version },
    createdAt: new Date(),
    attempt: 1,
  };
}

describe('snapshot invalidation from the outbox', () => {
  it('keeps a cached snapshot that already holds the change, drops an older one', async () => {
    const cache = new SnapshotCache(10, 60_000);
    const bus = new InvalidationBus(cache, null, 'unused', createLogger('silent'));
    const handler = handlersOf(bus).get('customer.entitlements_changed')!;
    const cached = { ...snapshot().build(), environment: 'test', customerId: 'acme', version: 3 };
    cache.set(cached, cache.ticket('test', 'acme'));

    await handler(changed('acme', 3));
    expect(cache.get('test', 'acme')).toBe(cached);
    await handler(changed('acme', 2));
    expect(cache.get('test', 'acme')).toBe(cached);
    await handler(changed('acme', 4));
    expect(cache.get('test', 'acme')).toBeUndefined();
  });

  it('drops the snapshot at once on a commit, whatever its version', () => {
    const cache = new SnapshotCache(10, 60_000);
    const bus = new InvalidationBus(cache, null, 'unused', createLogger('silent'));
    const cached = { ...snapshot().build(), environment: 'test', customerId: 'acme', version: 3 };
    cache.set(cached, cache.ticket('test', 'acme'));
    bus.onCommit({ environment: 'test', customerIds: ['acme'], topics: [] });
    expect(cache.get('test', 'acme')).toBeUndefined();
  });
});
