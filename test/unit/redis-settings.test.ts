import { describe, expect, it } from 'vitest';
import { redisSettingsWarnings } from '../../src/platform/redis.ts';

describe('redisSettingsWarnings', () => {
  const safe = { maxmemoryPolicy: 'noeviction', appendonly: 'yes', save: '' };

  it('says nothing of a server that never evicts and keeps an append-only file', () => {
    expect(redisSettingsWarnings(safe)).toEqual([]);
    expect(redisSettingsWarnings({ ...safe, appendonly: 'no', save: '3600 1 300 100' })).toEqual([]);
  });

  it('warns of every eviction policy but noeviction, volatile ones included (Tessera’s keys carry TTLs)', () => {
    for (const policy of ['allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru', 'volatile-ttl']) {
      const warnings = redisSettingsWarnings({ ...safe, maxmemoryPolicy: policy });
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`maxmemory-policy is ${policy}`);
    }
  });

  it('warns when nothing is kept on disk', () => {
    const warnings = redisSettingsWarnings({ ...safe, appendonly: 'no', save: ' ' });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('appendonly yes');
  });
});
