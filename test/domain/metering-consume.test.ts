import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type CounterState,
  creditAvailable,
  EMPTY_COUNTER,
  type GrantUsage,
  holdFits,
  planEvent,
  remainingOf,
  withDraws,
} from '../../src/modules/metering/consume.ts';
import type { UsageTerms } from '../../src/modules/metering/store.ts';

const period = { start: new Date('2026-01-01T00:00:00Z'), end: new Date('2026-02-01T00:00:00Z') };

function terms(fields: Partial<UsageTerms> = {}): UsageTerms {
  return {
    aggregation: 'sum',
    limit: 100,
    overage: 'deny',
    thresholds: [80, 100],
    grants: [],
    period,
    ...fields,
  };
}

/** Runs events through planEvent like a store does, returning the final state and every plan. */
function run(t: UsageTerms, amounts: number[], start: CounterState = EMPTY_COUNTER) {
  let state = start;
  let usage: GrantUsage = {};
  const plans = amounts.map((add) => {
    const plan = planEvent(state, usage, t, add);
    if (plan.fits) {
      state = plan.after;
      usage = withDraws(usage, plan.draws);
    }
    return plan;
  });
  return { state, usage, plans };
}

const grantsArb = fc
  .array(fc.integer({ min: 0, max: 50 }), { maxLength: 4 })
  .map((amounts) => amounts.map((amount, i) => ({ id: `g${i}`, amount })));
const termsArb = fc.record({
  limit: fc.option(fc.integer({ min: 0, max: 200 }), { nil: null }),
  overage: fc.constantFrom('deny' as const, 'allow' as const),
  grants: grantsArb,
  thresholds: fc.constant<number[]>([50, 80, 100]),
});

describe('planEvent', () => {
  it('under deny, usage never passes the limit plus credit, and a refusal changes nothing', () => {
    fc.assert(
      fc.property(
        termsArb,
        fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 30 }),
        (fields, amounts) => {
          const t = terms({ ...fields, overage: 'deny' });
          const credit = creditAvailable(t.grants, {});
          const { state, plans } = run(t, amounts);
          if (t.limit !== null) expect(state.used).toBeLessThanOrEqual(t.limit + credit);
          expect(state.overage).toBe(0);
          for (const p of plans.filter((p) => !p.fits)) expect(p.draws).toEqual([]);
          const accepted = amounts.filter((_, i) => plans[i]!.fits).reduce((a, b) => a + b, 0);
          expect(state.used).toBe(accepted);
        },
      ),
    );
  });

  it('what passes the limit is paid by credit first, then overage, and the split adds up', () => {
    fc.assert(
      fc.property(
        termsArb,
        fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 30 }),
        (fields, amounts) => {
          const t = terms({ ...fields, overage: 'allow' });
          const { state, usage, plans } = run(t, amounts);
          expect(plans.every((p) => p.fits)).toBe(true);
          const total = amounts.reduce((a, b) => a + b, 0);
          expect(state.used).toBe(total);
          const beyond = t.limit === null ? 0 : Math.max(0, total - t.limit);
          expect(state.creditUsed + state.overage).toBe(beyond);
          // No grant is drawn past its amount, and overage only appears once credit is gone.
          for (const g of t.grants) expect(usage[g.id] ?? 0).toBeLessThanOrEqual(g.amount);
          if (state.overage > 0) expect(creditAvailable(t.grants, usage)).toBe(0);
        },
      ),
    );
  });

  it('draws grants strictly in the order given (burn-down order)', () => {
    const t = terms({
      limit: 10,
      grants: [
        { id: 'first', amount: 5 },
        { id: 'second', amount: 5 },
      ],
    });
    const { usage, plans } = run(t, [10, 3, 4, 1]);
    expect(plans.map((p) => p.draws)).toEqual([
      [],
      [['first', 3]],
      [
        ['first', 2],
        ['second', 2],
      ],
      [['second', 1]],
    ]);
    expect(plans[3]!.fits).toBe(true);
    expect(usage).toEqual({ first: 5, second: 3 });
  });

  it('counting in two steps gives the same state as one step', () => {
    fc.assert(
      fc.property(
        termsArb,
        fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 20 }),
        fc.nat(20),
        (fields, amounts, cut) => {
          const t = terms(fields);
          const whole = run(t, amounts);
          const first = run(t, amounts.slice(0, cut));
          let state = first.state;
          let usage = first.usage;
          for (const add of amounts.slice(cut)) {
            const plan = planEvent(state, usage, t, add);
            if (plan.fits) {
              state = plan.after;
              usage = withDraws(usage, plan.draws);
            }
          }
          expect(state).toEqual(whole.state);
          expect(usage).toEqual(whole.usage);
        },
      ),
    );
  });

  it('announces each threshold exactly once, at the event that reaches it', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 1, maxLength: 40 }), (amounts) => {
        const t = terms({ limit: 100, overage: 'allow' });
        const { plans, state } = run(t, amounts);
        const crossed = plans.flatMap((p) => p.crossed);
        expect(new Set(crossed).size).toBe(crossed.length);
        for (const threshold of t.thresholds)
          expect(crossed.includes(threshold)).toBe(state.used >= threshold);
      }),
    );
  });

  it('live holds take room first and claim credit, so others cannot use it', () => {
    const t = terms({ limit: 10, grants: [{ id: 'g', amount: 5 }] });
    const held: CounterState = { used: 4, held: 8, overage: 0, creditUsed: 0 };
    expect(remainingOf(held, t, {})).toBe(3);
    expect(planEvent(held, {}, t, 4).fits).toBe(false);
    expect(planEvent(held, {}, t, 3).fits).toBe(true);
    expect(holdFits(held, {}, t, 3)).toBe(true);
    expect(holdFits(held, {}, t, 4)).toBe(false);
    // A committed reservation is accepted whatever the limit says now.
    expect(planEvent({ ...held, held: 0 }, {}, terms({ limit: 0 }), 8, true).fits).toBe(true);
  });

  it('remaining is what one more event can still use', () => {
    fc.assert(
      fc.property(
        termsArb,
        fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 20 }),
        (fields, amounts) => {
          const t = terms({ ...fields, overage: 'deny' });
          const { state, usage } = run(t, amounts);
          const remaining = remainingOf(state, t, usage);
          if (remaining === null) return;
          expect(planEvent(state, usage, t, remaining).fits).toBe(true);
          expect(planEvent(state, usage, t, remaining + 1).fits).toBe(false);
        },
      ),
    );
  });
});
