import { describe, expect, it } from 'vitest';
import { SnapshotCache } from '../../src/modules/entitlements/cache.ts';
import { InvalidationBus } from '../../src/modules/entitlements/invalidation.ts';
import { createLogger } from '../../src/platform/logger.ts';
import type {
  DispatchedEvent,
  DispatchRound,
  OutboxDispatcher,
  OutboxHandler,
} from '../../src/platform/outbox.ts';
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

/** A dispatch round that shares nothing (these handlers read nothing). */
const ROUND: DispatchRound = { memo: (_key, load) => load() };

describe('snapshot invalidation from the outbox', () => {
  it('keeps a cached snapshot that already holds the change, drops an older one', async () => {
    const cache = new SnapshotCache(10, 60_000);
    const bus = new InvalidationBus(cache, null, 'unused', createLogger('silent'));
    const handler = handlersOf(bus).get('customer.entitlements_changed')!;
    const cached = { ...snapshot().build(), environment: 'test', customerId: 'acme', version: 3 };
    cache.set(cached, cache.ticket('test', 'acme'));

    await handler(changed('acme', 3), ROUND);
    expect(cache.get('test', 'acme')).toBe(cached);
    await handler(changed('acme', 2), ROUND);
    expect(cache.get('test', 'acme')).toBe(cached);
    await handler(changed('acme', 4), ROUND);
    expect(cache.get('test', 'acme')).toBeUndefined();
  });

  it('drops the snapshot at once on a commit, whatever its version', () => {
    const cache = new SnapshotCache(10, 60_000);
    const bus = new InvalidationBus(cache, null, 'unused', createLogger('silent'));
    const cached = { ...snapshot().build(), environment: 'test', customerId: 'acme', version: 3 };
    cache.set(cached, cache.ticket('test', 'acme'));
    bus.onCommit({ environment: 'test', customerIds: ['acme'], topics: [], versions: new Map() });
    expect(cache.get('test', 'acme')).toBeUndefined();
  });
});

describe('versions seen per customer (read replica guard)', () => {
  const at = (version: number) => ({
    ...snapshot().build(),
    environment: 'test',
    customerId: 'acme',
    exists: true,
    version,
  });

  it('remembers the highest version from loads, commits and messages, past the snapshot', () => {
    const cache = new SnapshotCache(10, 60_000, { versionsTracked: 100 });
    const bus = new InvalidationBus(cache, null, 'unused', createLogger('silent'));
    expect(cache.seenVersion('test', 'acme')).toBe(0);
    cache.set(at(3), cache.ticket('test', 'acme'));
    expect(cache.seenVersion('test', 'acme')).toBe(3);
    bus.onCommit({
      environment: 'test',
      customerIds: ['acme'],
      topics: [],
      versions: new Map([['acme', 4]]),
    });
    expect(cache.get('test', 'acme')).toBeUndefined();
    expect(cache.seenVersion('test', 'acme')).toBe(4);
    // A late, older message or load moves nothing back.
    cache.invalidateCustomer('test', 'acme', 2);
    cache.set(at(3), cache.ticket('test', 'acme'));
    expect(cache.seenVersion('test', 'acme')).toBe(4);
  });

  it("learns another node's change from the outbox's durable message", async () => {
    const cache = new SnapshotCache(10, 60_000, { versionsTracked: 100 });
    const bus = new InvalidationBus(cache, null, 'unused', createLogger('silent'));
    await handlersOf(bus).get('customer.entitlements_changed')!(changed('acme', 7), ROUND);
    expect(cache.seenVersion('test', 'acme')).toBe(7);
  });

  it('never replaces a cached snapshot with an older one', () => {
    const cache = new SnapshotCache(10, 60_000);
    const ticket = cache.ticket('test', 'acme');
    const newer = at(5);
    cache.set(newer, ticket);
    cache.set(at(4), ticket);
    expect(cache.get('test', 'acme')).toBe(newer);
  });

  it('tracks nothing without a replica', () => {
    const cache = new SnapshotCache(10, 60_000);
    cache.set(at(3), cache.ticket('test', 'acme'));
    expect(cache.seenVersion('test', 'acme')).toBe(0);
  });
});

describe('snapshot expiry', () => {
  it('keeps each snapshot for the TTL give or take a fifth, so snapshots loaded together expire apart', () => {
    const ttl = 100_000;
    const cache = new SnapshotCache(1_000, ttl);
    for (let i = 0; i < 200; i++) {
      const s = { ...snapshot().build(), environment: 'test', customerId: `c${i}`, version: 1 };
      cache.set(s, cache.ticket('test', `c${i}`));
    }
    const left = Array.from({ length: 200 }, (_, i) => cache.remainingTtl('test', `c${i}`));
    // A little time passes between set and read: allow a second.
    expect(Math.min(...left)).toBeGreaterThan(0.8 * ttl - 1_000);
    expect(Math.max(...left)).toBeLessThanOrEqual(1.2 * ttl);
    expect(Math.max(...left) - Math.min(...left)).toBeGreaterThan(0.2 * ttl);
    expect(cache.remainingTtl('test', 'nobody')).toBe(0);
  });
});
