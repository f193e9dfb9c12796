import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addPeriods,
  billingPeriodContaining,
  nextPeriod,
  type Period,
  periodContaining,
  previousPeriod,
} from '../../src/domain/periods.ts';
import type { ResetInterval } from '../../src/domain/types.ts';

const d = (iso: string) => new Date(iso);
const iso = (p: Period) => [p.start.toISOString(), p.end.toISOString()];

/** Milliseconds since UTC midnight, also for instants before 1970. */
const timeOfDay = (t: Date) => ((t.getTime() % 86_400_000) + 86_400_000) % 86_400_000;
const TEN_YEARS_MS = 10 * 366 * 86_400_000;
const steppedIntervals: ResetInterval[] = ['day', 'week', 'month', 'year', 'billing_period'];

/** Anchors biased towards the days that need clamping: the 28th-31st and Feb 29. */
const anchorArb = fc.oneof(
  fc.date({ min: d('1990-01-01T00:00:00Z'), max: d('2060-01-01T00:00:00Z'), noInvalidDate: true }),
  fc
    .record({
      year: fc.integer({ min: 1990, max: 2060 }),
      month: fc.integer({ min: 0, max: 11 }),
      day: fc.integer({ min: 28, max: 31 }),
      ms: fc.integer({ min: 0, max: 86_399_999 }),
    })
    .map(({ year, month, day, ms }) => new Date(Date.UTC(year, month, 1) + (day - 1) * 86_400_000 + ms))
    // Day 31 of a 30-day month would roll into the next month; keep only real end-of-month dates.
    .filter((a) => a.getUTCDate() >= 28),
  fc
    .constantFrom(1992, 1996, 2000, 2004, 2024, 2028, 2048)
    .chain((year) =>
      fc.integer({ min: 0, max: 86_399_999 }).map((ms) => new Date(Date.UTC(year, 1, 29) + ms)),
    ),
);
const anchorAndTimeArb = anchorArb.chain((anchor) =>
  fc.record({
    anchor: fc.constant(anchor),
    t: fc
      .integer({ min: -TEN_YEARS_MS, max: TEN_YEARS_MS })
      .map((offset) => new Date(anchor.getTime() + offset)),
    interval: fc.constantFrom(...steppedIntervals),
    calendar: fc.boolean(),
  }),
);
const anchorOf = (x: { anchor: Date; interval: ResetInterval; calendar: boolean }) =>
  x.calendar && x.interval !== 'billing_period' ? null : x.anchor;

describe('periodContaining properties', () => {
  it('contains t, and its neighbours tile time with no gap and no overlap', () => {
    fc.assert(
      fc.property(anchorAndTimeArb, (x) => {
        const anchor = anchorOf(x);
        const p = periodContaining(x.interval, x.t, anchor);
        expect(p.start <= x.t && x.t < p.end).toBe(true);
        const next = nextPeriod(x.interval, p, anchor);
        const previous = previousPeriod(x.interval, p, anchor);
        expect(next.start).toEqual(p.end);
        expect(previous.end).toEqual(p.start);
        expect(previousPeriod(x.interval, next, anchor)).toEqual(p);
        expect(nextPeriod(x.interval, previous, anchor)).toEqual(p);
        // Every instant of the period maps back to the same period.
        expect(periodContaining(x.interval, p.start, anchor)).toEqual(p);
        expect(periodContaining(x.interval, new Date(p.end.getTime() - 1), anchor)).toEqual(p);
      }),
      { numRuns: 2000 },
    );
  });

  it('boundaries are addPeriods from the anchor, and stepping forward then back is identity', () => {
    fc.assert(
      fc.property(
        anchorArb,
        fc.constantFrom(...steppedIntervals),
        fc.integer({ min: -130, max: 130 }),
        (anchor, interval, n) => {
          const boundary = addPeriods(interval, anchor, n);
          const p = periodContaining(interval, boundary, anchor);
          expect(p.start).toEqual(boundary);
          expect(p.end).toEqual(addPeriods(interval, anchor, n + 1));
          expect(addPeriods(interval, anchor, 0)).toEqual(anchor);
          // Clamped from the anchor: the anchor's day, or the month's last day when it is shorter.
          if (interval === 'month' || interval === 'billing_period' || interval === 'year') {
            const lastDay = new Date(
              Date.UTC(boundary.getUTCFullYear(), boundary.getUTCMonth() + 1, 0),
            ).getUTCDate();
            expect(boundary.getUTCDate()).toBe(Math.min(anchor.getUTCDate(), lastDay));
            expect(timeOfDay(boundary)).toBe(timeOfDay(anchor));
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('anchored month periods', () => {
  it('clamps from the anchor on Jan 31, not from the previous boundary', () => {
    const anchor = d('2023-01-31T10:00:00Z');
    const boundaries = [0, 1, 2, 3, 4, 13].map((n) => addPeriods('month', anchor, n).toISOString());
    expect(boundaries).toEqual([
      '2023-01-31T10:00:00.000Z',
      '2023-02-28T10:00:00.000Z',
      '2023-03-31T10:00:00.000Z',
      '2023-04-30T10:00:00.000Z',
      '2023-05-31T10:00:00.000Z',
      '2024-02-29T10:00:00.000Z',
    ]);
  });

  it('finds the period for a time inside a short month', () => {
    const anchor = d('2024-01-31T10:00:00Z');
    expect(iso(billingPeriodContaining(anchor, d('2024-03-01T00:00:00Z')))).toEqual([
      '2024-02-29T10:00:00.000Z',
      '2024-03-31T10:00:00.000Z',
    ]);
    expect(iso(billingPeriodContaining(anchor, d('2024-02-29T09:59:59.999Z')))).toEqual([
      '2024-01-31T10:00:00.000Z',
      '2024-02-29T10:00:00.000Z',
    ]);
  });

  it('extends backwards before the anchor', () => {
    const anchor = d('2024-03-31T00:00:00Z');
    expect(iso(periodContaining('month', d('2024-03-15T00:00:00Z'), anchor))).toEqual([
      '2024-02-29T00:00:00.000Z',
      '2024-03-31T00:00:00.000Z',
    ]);
    expect(iso(periodContaining('day', d('2024-03-30T12:00:00Z'), d('2024-03-31T06:00:00Z')))).toEqual([
      '2024-03-30T06:00:00.000Z',
      '2024-03-31T06:00:00.000Z',
    ]);
  });

  it('billing_period needs an anchor', () => {
    expect(() => periodContaining('billing_period', d('2024-01-01T00:00:00Z'), null)).toThrow(RangeError);
  });
});

describe('anchored year periods and leap days', () => {
  const anchor = d('2024-02-29T08:30:00Z');
  it('falls back to Feb 28 in non-leap years and returns to Feb 29 in leap years', () => {
    const boundaries = [1, 4, 76].map((n) => addPeriods('year', anchor, n).toISOString());
    // 2100 is divisible by 100 and not by 400: not a leap year.
    expect(boundaries).toEqual([
      '2025-02-28T08:30:00.000Z',
      '2028-02-29T08:30:00.000Z',
      '2100-02-28T08:30:00.000Z',
    ]);
    expect(iso(periodContaining('year', d('2028-03-01T00:00:00Z'), anchor))).toEqual([
      '2028-02-29T08:30:00.000Z',
      '2029-02-28T08:30:00.000Z',
    ]);
  });

  it('knows 2100 has no Feb 29 on the calendar either', () => {
    expect(iso(periodContaining('month', d('2100-02-15T00:00:00Z'), null))).toEqual([
      '2100-02-01T00:00:00.000Z',
      '2100-03-01T00:00:00.000Z',
    ]);
    expect(iso(periodContaining('day', d('2100-02-28T23:00:00Z'), null))[1]).toBe('2100-03-01T00:00:00.000Z');
  });
});

describe('calendar periods', () => {
  it('weeks start on Monday 00:00 UTC', () => {
    // 2024-06-09 is a Sunday; its ISO week started on Monday 2024-06-03.
    const p = periodContaining('week', d('2024-06-09T23:59:59Z'), null);
    expect(iso(p)).toEqual(['2024-06-03T00:00:00.000Z', '2024-06-10T00:00:00.000Z']);
    expect(p.start.getUTCDay()).toBe(1);
    expect(iso(periodContaining('week', d('2024-06-10T00:00:00Z'), null))[0]).toBe(
      '2024-06-10T00:00:00.000Z',
    );
  });

  it('December rolls over to January of the next year', () => {
    const dec = periodContaining('month', d('2024-12-31T23:59:59.999Z'), null);
    expect(iso(dec)).toEqual(['2024-12-01T00:00:00.000Z', '2025-01-01T00:00:00.000Z']);
    expect(iso(nextPeriod('month', dec, null))).toEqual([
      '2025-01-01T00:00:00.000Z',
      '2025-02-01T00:00:00.000Z',
    ]);
  });

  it('days start at UTC midnight and years on Jan 1', () => {
    expect(iso(periodContaining('day', d('2024-05-05T13:14:15Z'), null))).toEqual([
      '2024-05-05T00:00:00.000Z',
      '2024-05-06T00:00:00.000Z',
    ]);
    expect(iso(periodContaining('year', d('2024-05-05T13:14:15Z'), null))).toEqual([
      '2024-01-01T00:00:00.000Z',
      '2025-01-01T00:00:00.000Z',
    ]);
  });

  it('handles years before 100 literally', () => {
    const t = new Date(Date.UTC(2000, 4, 10));
    t.setUTCFullYear(50);
    expect(periodContaining('month', t, null).start.getUTCFullYear()).toBe(50);
  });
});

describe('none', () => {
  it('is one period covering all time, with no neighbours', () => {
    const p = periodContaining('none', d('2024-01-01T00:00:00Z'), null);
    expect(p).toEqual({ start: new Date(-8.64e15), end: new Date(8.64e15) });
    expect(() => nextPeriod('none', p, null)).toThrow(RangeError);
    expect(() => addPeriods('none', d('2024-01-01T00:00:00Z'), 1)).toThrow(RangeError);
  });
});

describe('shared periods', () => {
  it('hands out one object per calendar period, and a new one when time moves past it', () => {
    const a = periodContaining('month', new Date('2026-03-02T00:00:00Z'), null);
    const b = periodContaining('month', new Date('2026-03-30T23:59:59Z'), null);
    expect(b).toBe(a);
    expect(Object.isFrozen(a)).toBe(true);
    const next = periodContaining('month', new Date('2026-04-01T00:00:00Z'), null);
    expect(next).not.toBe(a);
    expect(next.start.toISOString()).toBe('2026-04-01T00:00:00.000Z');
    // Going back in time (tests' clocks do) still answers the right period.
    const back = periodContaining('month', new Date('2026-03-15T00:00:00Z'), null);
    expect([back.start.toISOString(), back.end.toISOString()]).toEqual([
      '2026-03-01T00:00:00.000Z',
      '2026-04-01T00:00:00.000Z',
    ]);
    expect(periodContaining('none', new Date(), null)).toBe(periodContaining('none', new Date(0), null));
  });
});
