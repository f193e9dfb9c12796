import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { resolveEntitlements } from '../../src/domain/resolve.ts';
import { nextChangeAfter } from '../../src/domain/validity.ts';
import { config, days, flag, snapshot, T0 } from './builders.ts';

const noUsage = () => ({ used: 0 });
const strip = (r: ReturnType<typeof resolveEntitlements>) => ({ ...r, evaluatedAt: null });

function arbitrarySnapshot() {
  return fc
    .record({
      trialDays: fc.option(fc.integer({ min: 1, max: 60 }), { nil: null }),
      cancelAtPeriodEnd: fc.boolean(),
      pastDueAt: fc.option(fc.integer({ min: 0, max: 120 }), { nil: null }),
      overrideStart: fc.integer({ min: 0, max: 120 }),
      overrideLength: fc.option(fc.integer({ min: 1, max: 60 }), { nil: null }),
      addonEnd: fc.option(fc.integer({ min: 1, max: 120 }), { nil: null }),
    })
    .map((p) =>
      snapshot()
        .withFeature('sso', 'boolean')
        .withFeature('theme', 'config')
        .onPlan('pro', [flag('sso'), config('theme', 'dark')], {
          status: p.pastDueAt === null ? (p.trialDays ? 'trialing' : 'active') : 'past_due',
          trialEndsAt: p.trialDays ? days(p.trialDays) : null,
          trialOnEnd: p.trialDays ? 'cancel' : null,
          cancelAtPeriodEnd: p.cancelAtPeriodEnd,
          pastDueSince: p.pastDueAt === null ? null : days(p.pastDueAt),
        })
        .withAddon('extra', [config('theme', 'neon')], {
          id: 'sub_addon',
          endedAt: p.addonEnd === null ? null : days(p.addonEnd),
        })
        .withOverride(
          'ovr_1',
          'sso',
          { type: 'boolean', enabled: false },
          {
            startsAt: days(p.overrideStart),
            expiresAt: p.overrideLength === null ? null : days(p.overrideStart + p.overrideLength),
          },
        )
        .build(),
    );
}

describe('nextChangeAfter', () => {
  it('is a boundary before which resolution does not change (non-metered)', () => {
    fc.assert(
      fc.property(
        arbitrarySnapshot(),
        fc.integer({ min: 0, max: 200 * 24 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (snap, hours, fraction) => {
          const now = new Date(T0.getTime() + hours * 3_600_000);
          const next = nextChangeAfter(snap, now);
          const horizon = next ? next.getTime() : now.getTime() + 400 * 86_400_000;
          const later = new Date(now.getTime() + Math.floor((horizon - now.getTime() - 1) * fraction));
          expect(strip(resolveEntitlements(snap, later, noUsage))).toEqual(
            strip(resolveEntitlements(snap, now, noUsage)),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('is after now, or null when nothing is due', () => {
    const snap = snapshot()
      .withFeature('sso', 'boolean')
      .onPlan('pro', [flag('sso')])
      .build();
    const now = days(10);
    const next = nextChangeAfter(snap, now);
    expect(next === null || next > now).toBe(true);
  });
});
