import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveEntitlements, withUsage } from '../../src/domain/resolve.ts';
import type { UsageReading } from '../../src/domain/resolved.ts';
import { nextChangeAfter } from '../../src/domain/validity.ts';
import { days, flag, metered, snapshot, T0 } from './builders.ts';

const zero = () => ({ used: 0 });
const strip = (r: ReturnType<typeof resolveEntitlements>) => ({ ...r, evaluatedAt: null });

function arbitraryCase() {
  return fc.record({
    limit: fc.option(fc.integer({ min: 0, max: 1000 }), { nil: null }),
    reset: fc.constantFrom('day', 'week', 'month', 'billing_period', 'none') as fc.Arbitrary<
      'day' | 'week' | 'month' | 'billing_period' | 'none'
    >,
    addonLimit: fc.option(fc.integer({ min: 0, max: 500 }), { nil: null }),
    overrideStart: fc.option(fc.integer({ min: 0, max: 90 }), { nil: null }),
    grants: fc.array(
      fc.record({
        amount: fc.integer({ min: 1, max: 300 }),
        priority: fc.integer({ min: 0, max: 3 }),
        effective: fc.integer({ min: 0, max: 60 }),
        length: fc.option(fc.integer({ min: 1, max: 60 }), { nil: null }),
      }),
      { maxLength: 4 },
    ),
    hours: fc.integer({ min: 0, max: 120 * 24 }),
    fraction: fc.double({ min: 0, max: 1, noNaN: true }),
    used: fc.integer({ min: 0, max: 2000 }),
    creditUsed: fc.option(fc.integer({ min: 0, max: 500 }), { nil: undefined }),
  });
}

describe('withUsage', () => {
  it('equals a full resolution with the same usage anywhere in the memo window', () => {
    fc.assert(
      fc.property(arbitraryCase(), (c) => {
        const builder = snapshot()
          .withFeature('api', 'metered')
          .withFeature('sso', 'boolean')
          .onPlan('pro', [flag('sso'), metered('api', c.limit, { reset: c.reset })], {
            billingAnchor: days(3),
          });
        if (c.addonLimit !== null) builder.withAddon('extra', [metered('api', c.addonLimit)]);
        if (c.overrideStart !== null)
          builder.withOverride(
            'ovr_1',
            'api',
            { type: 'metered', limit: 5000 },
            { startsAt: days(c.overrideStart) },
          );
        c.grants.forEach((g, i) => {
          builder.withGrant(`grant_${i}`, 'api', g.amount, {
            priority: g.priority,
            effectiveAt: days(g.effective),
            expiresAt: g.length === null ? null : days(g.effective + g.length),
          });
        });
        const snap = builder.build();
        const first = new Date(T0.getTime() + c.hours * 3_600_000);
        const base = resolveEntitlements(snap, first, zero);
        // The engine's memo window: up to the next time boundary and the end of the usage period.
        let until = nextChangeAfter(snap, first)?.getTime() ?? first.getTime() + 400 * 86_400_000;
        const api = base.entitlements.get('api');
        if (api?.type === 'metered') until = Math.min(until, api.period.end.getTime());
        const later = new Date(first.getTime() + Math.floor((until - first.getTime() - 1) * c.fraction));
        const reading: UsageReading = {
          used: c.used,
          ...(c.creditUsed !== undefined ? { creditUsed: c.creditUsed } : {}),
        };
        const usage = () => reading;
        expect(strip(withUsage(base, snap, later, usage))).toEqual(
          strip(resolveEntitlements(snap, later, usage)),
        );
        expect(withUsage(base, snap, later, usage).evaluatedAt).toEqual(later);
      }),
      { numRuns: 400 },
    );
  });
});
