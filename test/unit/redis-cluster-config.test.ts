import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { bullPrefix, redisConfigured } from '../../src/platform/redis.ts';
import { slotOf, slotOfKey } from '../../src/platform/redis-slots.ts';

describe('REDIS_CLUSTER_NODES', () => {
  it('reads host:port entries, comma-separated, and means Redis is configured', () => {
    const config = loadConfig({ REDIS_CLUSTER_NODES: ' 10.0.0.1:7000, redis-b.internal:7001,[::1]:7002 ' });
    expect(config.redisClusterNodes).toEqual(['10.0.0.1:7000', 'redis-b.internal:7001', '[::1]:7002']);
    expect(config.redisUrl).toBeUndefined();
    expect(redisConfigured(config)).toBe(true);
    expect(redisConfigured(loadConfig({}))).toBe(false);
  });

  it('names the variable when an entry is not host:port, and refuses it together with REDIS_URL', () => {
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: 'redis://10.0.0.1:7000' })).toThrow(
      /REDIS_CLUSTER_NODES.*host:port/,
    );
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: ',' })).toThrow(/REDIS_CLUSTER_NODES/);
    expect(() =>
      loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000', REDIS_URL: 'redis://127.0.0.1:6379' }),
    ).toThrow(ConfigError);
  });

  it('puts BullMQ keys under a hash tag on a cluster only', () => {
    expect(bullPrefix(loadConfig({ REDIS_CLUSTER_NODES: '10.0.0.1:7000' }), 'tessera')).toBe('{tessera}');
    expect(bullPrefix(loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379' }), 'tessera:bull')).toBe(
      'tessera:bull',
    );
  });
});

describe('Redis Cluster key slots', () => {
  it('agree with CLUSTER KEYSLOT and follow the hash-tag rule', () => {
    // Values as Redis itself answers CLUSTER KEYSLOT.
    expect(slotOf('foo')).toBe(12182);
    expect(slotOf('123456789')).toBe(12739);
    expect(slotOfKey('{user1000}.following')).toBe(slotOf('user1000'));
    expect(slotOfKey('tessera:u:{test:acme}:c:calls:1')).toBe(slotOf('test:acme'));
    // An empty tag does not count: the whole key is hashed.
    expect(slotOfKey('foo{}{bar}')).toBe(slotOf('foo{}{bar}'));
    expect(slotOfKey('foo{{bar}}zap')).toBe(slotOf('{bar'));
  });
});
