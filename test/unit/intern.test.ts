import { describe, expect, it } from 'vitest';
import type { Feature, PlanVersion } from '../../src/domain/types.ts';
import { internFeatures, internPlanVersion } from '../../src/modules/entitlements/intern.ts';
import { metered } from '../domain/builders.ts';

const feature = (key: string, name = key): Feature => ({
  key,
  name,
  type: 'boolean',
  unit: null,
  description: null,
  aggregation: 'sum',
  archived: false,
});

const plan = (version: number, limit: number): PlanVersion => ({
  planKey: 'pro',
  version,
  addon: false,
  trial: null,
  entitlements: [metered('api', limit)],
});

describe('interning snapshot content', () => {
  it('shares equal content and keeps different content apart', () => {
    const a = internFeatures(new Map([['sso', feature('sso')]]));
    expect(internFeatures(new Map([['sso', feature('sso')]]))).toBe(a);
    const renamed = internFeatures(new Map([['sso', feature('sso', 'Single sign-on')]]));
    expect(renamed).not.toBe(a);
    expect(renamed.get('sso')?.name).toBe('Single sign-on');

    const v1 = internPlanVersion(plan(1, 100));
    expect(internPlanVersion(plan(1, 100))).toBe(v1);
    expect(internPlanVersion(plan(1, 200))).not.toBe(v1);
    expect(internPlanVersion(plan(2, 100))).not.toBe(v1);
  });
});
