/**
 * Period boundaries for quota resets and billing, in UTC.
 *
 * Calendar periods (anchor null) start at UTC midnight, on the ISO week's Monday, on the 1st of
 * the month or on Jan 1. Anchored periods step from the anchor instant: days and weeks by a fixed
 * number of milliseconds, months and years by calendar months at the anchor's time of day.
 *
 * Month-end clamping is computed from the anchor every time, never from the previous boundary:
 * the n-th boundary falls on the anchor's day of month, or on the last day of the target month
 * when that month is shorter. Anchored on Jan 31 10:00 the boundaries are Feb 28 (29 in leap
 * years) 10:00, Mar 31 10:00, Apr 30 10:00; a yearly Feb 29 anchor gives Feb 28 in other years.
 * Stepping from the previous boundary instead would drift (Jan 31 -> Feb 28 -> Mar 28), which is
 * why boundaries are always `addPeriods(interval, anchor, n)`.
 *
 * Periods are half-open [start, end) and tile time before and after the anchor.
 */
import type { ResetInterval } from './types.ts';

/** A half-open interval [start, end). */
export interface Period {
  start: Date;
  end: Date;
}

const DAY_MS = 86_400_000;
const WEEK_MS = 7 * DAY_MS;
/** 1970-01-01 was a Thursday; ISO weeks start on the Monday three days earlier. */
const EPOCH_TO_MONDAY_MS = 3 * DAY_MS;

/** The bounds of the range a Date can hold: the one period of `none` spans it. */
const MAX_DATE_MS = 8.64e15;

/**
 * The period of `interval` that contains `t`. Calendar-aligned (UTC) when `anchor` is null;
 * otherwise anchored to `anchor` (month-end clamped). `billing_period` is monthly and needs an anchor.
 * `none` is one period covering all time.
 */
export function periodContaining(interval: ResetInterval, t: Date, anchor: Date | null): Period {
  assertValidDate(t, 't');
  if (interval === 'none') return NO_RESET_PERIOD;
  if (anchor === null) {
    if (interval === 'billing_period') throw new RangeError('billing_period periods need a billing anchor');
    return sharedCalendarPeriod(interval, t);
  }
  assertValidDate(anchor, 'anchor');
  const index = periodIndex(interval, t, anchor);
  return { start: addPeriods(interval, anchor, index), end: addPeriods(interval, anchor, index + 1) };
}

/** The billing period (monthly, anchored) containing `t`. */
export function billingPeriodContaining(anchor: Date, t: Date): Period {
  return periodContaining('billing_period', t, anchor);
}

/**
 * The n-th period boundary from `anchor` (n may be negative), clamped from the anchor itself.
 * `none` has no boundaries.
 */
export function addPeriods(interval: ResetInterval, anchor: Date, n: number): Date {
  if (!Number.isInteger(n)) throw new RangeError(`period count must be an integer, got ${n}`);
  switch (interval) {
    case 'day':
      return new Date(anchor.getTime() + n * DAY_MS);
    case 'week':
      return new Date(anchor.getTime() + n * WEEK_MS);
    case 'month':
    case 'billing_period':
      return addMonthsClamped(anchor, n);
    case 'year':
      return addMonthsClamped(anchor, 12 * n);
    case 'none':
      throw new RangeError('a none interval has no period boundaries');
  }
}

/** The period right after `period`. `none` has no next period. */
export function nextPeriod(interval: ResetInterval, period: Period, anchor: Date | null): Period {
  if (interval === 'none') throw new RangeError('a none interval has no next period');
  return periodContaining(interval, period.end, anchor);
}

/** The period right before `period`. `none` has no previous period. */
export function previousPeriod(interval: ResetInterval, period: Period, anchor: Date | null): Period {
  if (interval === 'none') throw new RangeError('a none interval has no previous period');
  return periodContaining(interval, new Date(period.start.getTime() - 1), anchor);
}

/** Which anchored period holds `t`: 0 is the one starting at the anchor, negative before it. */
function periodIndex(interval: Exclude<ResetInterval, 'none'>, t: Date, anchor: Date): number {
  switch (interval) {
    case 'day':
      return Math.floor((t.getTime() - anchor.getTime()) / DAY_MS);
    case 'week':
      return Math.floor((t.getTime() - anchor.getTime()) / WEEK_MS);
    case 'month':
    case 'billing_period': {
      // The boundary in t's own month is either at or before t (then it starts t's period) or after it.
      const index = monthIndex(t) - monthIndex(anchor);
      return addMonthsClamped(anchor, index) > t ? index - 1 : index;
    }
    case 'year': {
      const index = t.getUTCFullYear() - anchor.getUTCFullYear();
      return addMonthsClamped(anchor, 12 * index) > t ? index - 1 : index;
    }
  }
}

/**
 * Periods are never mutated, so the ones every customer has in common are shared: the one period
 * of `none`, and per calendar interval the last period handed out (all customers counting by
 * calendar month hold the same two dates instead of two each per resolution in the decision memo).
 */
const NO_RESET_PERIOD: Period = Object.freeze({ start: new Date(-MAX_DATE_MS), end: new Date(MAX_DATE_MS) });
const lastCalendarPeriod = new Map<string, Period>();

function sharedCalendarPeriod(interval: 'day' | 'week' | 'month' | 'year', t: Date): Period {
  const last = lastCalendarPeriod.get(interval);
  const ms = t.getTime();
  if (last && ms >= last.start.getTime() && ms < last.end.getTime()) return last;
  const period = Object.freeze(calendarPeriodContaining(interval, t));
  lastCalendarPeriod.set(interval, period);
  return period;
}

function calendarPeriodContaining(interval: 'day' | 'week' | 'month' | 'year', t: Date): Period {
  const ms = t.getTime();
  switch (interval) {
    case 'day': {
      const start = Math.floor(ms / DAY_MS) * DAY_MS;
      return { start: new Date(start), end: new Date(start + DAY_MS) };
    }
    case 'week': {
      const start = Math.floor((ms + EPOCH_TO_MONDAY_MS) / WEEK_MS) * WEEK_MS - EPOCH_TO_MONDAY_MS;
      return { start: new Date(start), end: new Date(start + WEEK_MS) };
    }
    case 'month': {
      const month = monthIndex(t);
      return { start: firstOfMonth(month), end: firstOfMonth(month + 1) };
    }
    case 'year': {
      const year = t.getUTCFullYear();
      return { start: firstOfMonth(year * 12), end: firstOfMonth((year + 1) * 12) };
    }
  }
}

/** Months since year 0, so month arithmetic is plain integer arithmetic. */
function monthIndex(d: Date): number {
  return d.getUTCFullYear() * 12 + d.getUTCMonth();
}

function addMonthsClamped(anchor: Date, months: number): Date {
  const target = monthIndex(anchor) + months;
  const year = Math.floor(target / 12);
  const month = target - year * 12;
  const day = Math.min(anchor.getUTCDate(), daysInMonth(year, month));
  return utcDate(
    year,
    month,
    day,
    anchor.getUTCHours(),
    anchor.getUTCMinutes(),
    anchor.getUTCSeconds(),
    anchor.getUTCMilliseconds(),
  );
}

function firstOfMonth(monthsSinceYearZero: number): Date {
  const year = Math.floor(monthsSinceYearZero / 12);
  return utcDate(year, monthsSinceYearZero - year * 12, 1, 0, 0, 0, 0);
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  if (month === 1 && isLeapYear(year)) return 29;
  return DAYS_IN_MONTH[month]!;
}

/** Proleptic Gregorian, as Date uses. */
function isLeapYear(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

function utcDate(
  year: number,
  month: number,
  day: number,
  h: number,
  m: number,
  s: number,
  ms: number,
): Date {
  // Date.UTC reads years 0..99 as 1900..1999; setUTCFullYear takes them literally.
  if (year >= 0 && year < 100) {
    const d = new Date(Date.UTC(2000, 0, 1, h, m, s, ms));
    d.setUTCFullYear(year, month, day);
    return d;
  }
  return new Date(Date.UTC(year, month, day, h, m, s, ms));
}

function assertValidDate(d: Date, name: string): void {
  if (Number.isNaN(d.getTime())) throw new RangeError(`${name} is not a valid date`);
}
