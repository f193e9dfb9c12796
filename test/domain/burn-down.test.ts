import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  availableCredit,
  burnDown,
  type CreditDraw,
  type GrantBalances,
  isGrantEffective,
  orderGrants,
  remainingOf,
} from '../../src/domain/burn-down.ts';
import type { CreditGrant } from '../../src/domain/types.ts';

const T0 = Date.UTC(2025, 0, 1);
const at = (day: number) => new Date(T0 + day * 86_400_000);
const NOW = at(100);

function grant(id: string, fields: Partial<CreditGrant> = {}): CreditGrant {
  return {
    id,
    customerId: 'c1',
    feature: 'api_calls',
    amount: 100,
    priority: 0,
    effectiveAt: at(0),
    expiresAt: null,
    createdAt: at(0),
    voidedAt: null,
    reason: 'test',
    ...fields,
  };
}

describe('orderGrants', () => {
  it('orders by priority, then earliest expiry (never last), then oldest, then id', () => {
    const grants = [
      grant('never', { priority: 1 }),
      grant('late', { priority: 1, expiresAt: at(50) }),
      grant('soon-new', { priority: 1, expiresAt: at(10), createdAt: at(2) }),
      grant('soon-old-b', { priority: 1, expiresAt: at(10), createdAt: at(1) }),
      grant('soon-old-a', { priority: 1, expiresAt: at(10), createdAt: at(1) }),
      grant('urgent', { priority: 0 }),
    ];
    expect(orderGrants(grants).map((g) => g.id)).toEqual([
      'urgent',
      'soon-old-a',
      'soon-old-b',
      'soon-new',
      'late',
      'never',
    ]);
  });
});

describe('burnDown', () => {
  it('draws from the first grant, then the next, and reports overage', () => {
    const grants = [grant('b', { amount: 10, priority: 2 }), grant('a', { amount: 5, priority: 1 })];
    const result = burnDown(
      grants,
      [
        { at: at(1), amount: 12 },
        { at: at(2), amount: 8 },
      ],
      NOW,
    );
    expect(result).toEqual({ balances: { a: 0, b: 0 }, covered: 15, uncovered: 5 });
  });

  it('only lets a grant pay while it is effective', () => {
    const grants = [
      grant('future', { effectiveAt: at(5) }),
      grant('expired', { expiresAt: at(3) }),
      grant('voided', { voidedAt: at(3) }),
    ];
    const result = burnDown(grants, [{ at: at(3), amount: 1 }], NOW);
    expect(result).toEqual({ balances: {}, covered: 0, uncovered: 1 });
    // The voided grant still paid before it was voided.
    expect(burnDown(grants, [{ at: at(2), amount: 1 }], NOW).balances).toEqual({ expired: 99 });
  });

  it('ignores draws after now and non-positive draws', () => {
    const result = burnDown(
      [grant('a')],
      [
        { at: at(101), amount: 5 },
        { at: at(1), amount: -3 },
      ],
      NOW,
    );
    expect(result).toEqual({ balances: {}, covered: 0, uncovered: 0 });
  });

  it('sorts draws by time', () => {
    const grants = [grant('short', { amount: 5, expiresAt: at(2) }), grant('long', { amount: 5 })];
    const result = burnDown(
      grants,
      [
        { at: at(3), amount: 5 },
        { at: at(1), amount: 5 },
      ],
      NOW,
    );
    expect(result.balances).toEqual({ short: 0, long: 0 });
    expect(result.uncovered).toBe(0);
  });
});

describe('availableCredit', () => {
  it('sums the balances of grants effective at the instant', () => {
    const grants = [grant('a', { amount: 10 }), grant('b', { amount: 7, expiresAt: at(5) })];
    expect(availableCredit(grants, { a: 4 }, at(1))).toBe(11);
    expect(availableCredit(grants, { a: 4 }, at(5))).toBe(4);
  });
});

describe('remainingOf', () => {
  it('is the unburnt balance of a grant that can still pay, its amount before it starts, else 0', () => {
    const grants = [
      grant('drawn', { amount: 10 }),
      grant('pending', { amount: 7, effectiveAt: at(200) }),
      grant('expired', { amount: 5, expiresAt: at(50) }),
      grant('voided', { amount: 5, voidedAt: at(90) }),
      grant('untouched', { amount: 3 }),
    ];
    const { balances } = burnDown(grants, [{ at: NOW, amount: 4 }], NOW);
    expect(Object.fromEntries(grants.map((g) => [g.id, remainingOf(g, balances, NOW)]))).toEqual({
      drawn: 6,
      pending: 7,
      expired: 0,
      voided: 0,
      untouched: 3,
    });
  });

  it('adds up to the credit available at the instant for the grants effective then', () => {
    fc.assert(
      fc.property(grantsArb, drawsArb, (grants, draws) => {
        const { balances } = burnDown(grants, draws, NOW);
        const effective = grants.filter((g) => isGrantEffective(g, NOW));
        const sum = effective.reduce((s, g) => s + remainingOf(g, balances, NOW), 0);
        expect(sum).toBe(availableCredit(grants, balances, NOW));
      }),
    );
  });
});

// Properties: integer amounts keep float rounding out of exact comparisons.
const grantArb = fc
  .record({
    amount: fc.integer({ min: 0, max: 50 }),
    priority: fc.integer({ min: 0, max: 3 }),
    effectiveDay: fc.integer({ min: 0, max: 60 }),
    lifetimeDays: fc.option(fc.integer({ min: 1, max: 60 }), { nil: null }),
    voidDay: fc.option(fc.integer({ min: 0, max: 100 }), { nil: null }),
    createdDay: fc.integer({ min: 0, max: 60 }),
  })
  .map((g) => ({
    amount: g.amount,
    priority: g.priority,
    effectiveAt: at(g.effectiveDay),
    expiresAt: g.lifetimeDays === null ? null : at(g.effectiveDay + g.lifetimeDays),
    voidedAt: g.voidDay === null ? null : at(g.voidDay),
    createdAt: at(g.createdDay),
  }));
const grantsArb = fc.array(grantArb, { maxLength: 6 }).map((gs) => gs.map((g, i) => grant(`g${i}`, g)));
const drawsArb = fc
  .array(fc.record({ day: fc.integer({ min: 0, max: 100 }), amount: fc.integer({ min: 1, max: 40 }) }), {
    maxLength: 12,
  })
  .map((ds) => ds.map((d) => ({ at: at(d.day), amount: d.amount })).sort((a, b) => +a.at - +b.at));
const total = (draws: CreditDraw[]) => draws.reduce((sum, d) => sum + d.amount, 0);

describe('burnDown properties', () => {
  it('running in two steps equals running once', () => {
    fc.assert(
      fc.property(grantsArb, drawsArb, fc.nat(), (grants, draws, cut) => {
        const split = draws.length === 0 ? 0 : cut % (draws.length + 1);
        const once = burnDown(grants, draws, NOW);
        const first = burnDown(grants, draws.slice(0, split), NOW);
        const second = burnDown(grants, draws.slice(split), NOW, first.balances);
        expect(second.balances).toEqual(once.balances);
        expect(first.covered + second.covered).toBe(once.covered);
        expect(first.uncovered + second.uncovered).toBe(once.uncovered);
      }),
    );
  });

  it('covered plus uncovered is everything drawn', () => {
    fc.assert(
      fc.property(grantsArb, drawsArb, (grants, draws) => {
        const result = burnDown(grants, draws, NOW);
        expect(result.covered + result.uncovered).toBe(total(draws));
      }),
    );
  });

  it('keeps every balance within [0, amount]', () => {
    fc.assert(
      fc.property(grantsArb, drawsArb, (grants, draws) => {
        const { balances } = burnDown(grants, draws, NOW);
        for (const g of grants) {
          const balance = balances[g.id] ?? g.amount;
          expect(balance).toBeGreaterThanOrEqual(0);
          expect(balance).toBeLessThanOrEqual(g.amount);
        }
      }),
    );
  });

  it('never lets a grant pay for a draw it is not effective at', () => {
    fc.assert(
      fc.property(grantsArb, drawsArb, (grants, draws) => {
        let balances: GrantBalances = {};
        // One draw at a time: a grant's balance may only move on a draw it is effective for.
        for (const draw of draws) {
          const next = burnDown(grants, [draw], NOW, balances).balances;
          for (const g of grants) {
            if (!isGrantEffective(g, draw.at)) {
              expect(next[g.id] ?? g.amount).toBe(balances[g.id] ?? g.amount);
            }
          }
          balances = next;
        }
      }),
    );
  });
});
