import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  breakTie,
  compareSnapshots,
  desiredSubscriptions,
  effectiveStatus,
  type InvoicePayment,
  mergeInvoicePayment,
  type SnapshotMark,
  type StripeSubscriptionSnapshot,
} from '../../src/domain/stripe-subscription.ts';

const mark = fc.record({
  created: fc.integer({ min: 0, max: 5 }),
  hash: fc.constantFrom('a', 'b', 'c', 'd'),
  terminal: fc.boolean(),
});

/** What a high-water mark keeps after seeing these marks in this order. */
function fold(marks: SnapshotMark[]): SnapshotMark | null {
  let stored: SnapshotMark | null = null;
  for (const m of marks) {
    const order = compareSnapshots(m, stored);
    const wins = order === 'newer' || (order === 'tie' && stored !== null && breakTie(m, stored) === 'newer');
    if (wins) stored = m;
  }
  return stored;
}

const payment = fc.record({
  id: fc.constant('in_1'),
  subscription: fc.constant('sub_1'),
  status: fc.constantFrom('failed' as const, 'paid' as const),
  failedAt: fc.option(fc.integer({ min: 0, max: 9 })),
  paidAt: fc.option(fc.integer({ min: 0, max: 9 })),
});

const snapshot = (over: Partial<StripeSubscriptionSnapshot> = {}): StripeSubscriptionSnapshot => ({
  id: 'sub_1',
  customer: 'cus_1',
  status: 'active',
  startDate: 1000,
  billingCycleAnchor: 1000,
  trialEnd: null,
  cancelAtPeriodEnd: false,
  cancelAt: null,
  canceledAt: null,
  endedAt: null,
  items: [
    { id: 'si_1', priceId: 'price_1', lookupKey: null, quantity: 3, periodStart: 1000, periodEnd: 5000 },
  ],
  ...over,
});

describe('Stripe snapshot ordering', () => {
  it('keeps the same mark whatever order (and repetition) the marks arrive in', () => {
    fc.assert(
      fc.property(fc.array(mark, { minLength: 1, maxLength: 8 }), fc.integer(), (marks, seed) => {
        // Two distinct states never share a hash; keep one mark per hash.
        const unique = [...new Map(marks.map((m) => [m.hash, m])).values()];
        const shuffled = [...unique, ...unique.slice(0, 2)].sort(
          (a, b) => ((a.hash.charCodeAt(0) * seed) % 7) - ((b.hash.charCodeAt(0) * seed) % 7),
        );
        expect(fold(shuffled)).toEqual(fold(unique));
      }),
    );
  });

  it('merges an invoice’s payments in any order', () => {
    fc.assert(
      fc.property(fc.array(payment, { minLength: 1, maxLength: 5 }), (payments) => {
        const forward = payments.reduce<InvoicePayment | null>((a, b) => mergeInvoicePayment(a, b), null);
        const backward = [...payments]
          .reverse()
          .reduce<InvoicePayment | null>((a, b) => mergeInvoicePayment(a, b), null);
        expect(forward).toEqual(backward);
      }),
    );
  });
});

describe('Stripe snapshot mapping', () => {
  it('maps statuses, and lets newer invoices move an active or past_due snapshot', () => {
    const failed: InvoicePayment = {
      id: 'in_1',
      subscription: 'sub_1',
      status: 'failed',
      failedAt: 200,
      paidAt: null,
    };
    expect(effectiveStatus(snapshot(), 100, [failed])).toEqual({
      status: 'past_due',
      pastDueSince: new Date(200_000),
    });
    expect(effectiveStatus(snapshot(), 300, [failed]).status).toBe('active');
    const paid = { ...failed, status: 'paid' as const, paidAt: 400 };
    expect(effectiveStatus(snapshot({ status: 'past_due' }), 300, [paid]).status).toBe('active');
    expect(effectiveStatus(snapshot({ status: 'unpaid' }), 300, []).status).toBe('past_due');
    expect(effectiveStatus(snapshot({ status: 'incomplete' }), 300, []).status).toBeNull();
    expect(effectiveStatus(snapshot({ status: 'incomplete_expired' }), 300, []).status).toBe('expired');
  });

  it('reads periods from the items and turns cancel_at into a cancel at an earlier period end', () => {
    const plan = { planKey: 'pro', planVersion: 2, addon: false };
    const [sub] = desiredSubscriptions(snapshot({ cancelAt: 4000 }), 100, [], () => plan).subscriptions;
    expect(sub?.slot).toBe('base');
    expect(sub?.state).toMatchObject({
      quantity: 3,
      currentPeriodStart: new Date(1_000_000),
      currentPeriodEnd: new Date(4_000_000),
      cancelAtPeriodEnd: true,
    });
    const unmapped = desiredSubscriptions(snapshot(), 100, [], () => null);
    expect(unmapped.subscriptions).toEqual([]);
    expect(unmapped.unmapped.map((i) => i.priceId)).toEqual(['price_1']);
  });
});
