/**
 * The quota model: the reference for what a usage store does with record, hold, commit, release,
 * expiry, credit and overage, and for the fields of its answer. Pure; see QUOTA.md for the rules.
 *
 * Two layers. The arithmetic (`planEvent`, `holdFits`, `remainingOf`, `answerOf`) is what the
 * Postgres store runs under its lock, and what the Lua scripts of the Redis store mirror. The book
 * (`record`, `hold`, `commit`, `release`, `expire`) is one customer's feature as a state machine
 * built on that arithmetic; test/integration/quota-differential.test.ts runs random sequences
 * through it and through every store and requires the same answers and counters.
 */
import type { Aggregation, OverageMode } from './types.ts';

export interface QuotaCredit {
  id: string;
  amount: number;
}

/** A usage period: `end` null for features that never reset (then `start` is the epoch). */
export interface QuotaPeriod {
  start: Date;
  end: Date | null;
}

/** What an event is counted under (the metering module's UsageTerms has this shape). */
export interface QuotaTerms {
  aggregation: Aggregation;
  /** null: unlimited. */
  limit: number | null;
  overage: OverageMode;
  /** Percent thresholds to announce when crossed. */
  thresholds: number[];
  /** Credit grants effective now, in burn-down order; empty unless the aggregation is `sum`. */
  grants: QuotaCredit[];
  period: QuotaPeriod;
}

/** One period's counter as the arithmetic sees it. */
export interface CounterState {
  /** Consumed in the period (sum, peak or distinct count). */
  used: number;
  /** Held by live reservations. */
  held: number;
  overage: number;
  /** Credit drawn in this period. */
  creditUsed: number;
}

/** Credit drawn so far from each grant, over all periods (grants outlive periods). */
export type GrantUsage = Readonly<Record<string, number>>;

export const EMPTY_COUNTER: CounterState = { used: 0, held: 0, overage: 0, creditUsed: 0 };

/** The answer to a usage event, a hold or a commit. */
export interface QuotaAnswer {
  accepted: boolean;
  reason?: 'limit_exceeded';
  /** Used in the period after this event, live reservations included. */
  used: number;
  limit: number | null;
  /** What still fits: unused limit plus credit not claimed by reservations; null when unlimited. */
  remaining: number | null;
  resetsAt: Date | null;
  periodStart: Date;
  /** The part of this event past the limit and credit (only under `allow`). */
  overage: number;
  /** The part of this event credit grants paid for. */
  creditUsed: number;
}

export function creditAvailable(grants: readonly QuotaCredit[], usage: GrantUsage): number {
  let total = 0;
  for (const g of grants) total += Math.max(0, g.amount - (usage[g.id] ?? 0));
  return total;
}

/** The part of the live holds that lies past the limit, so claims credit. */
export function heldBeyondLimit(state: CounterState, limit: number | null): number {
  if (limit === null) return 0;
  return Math.max(0, state.used + state.held - Math.max(limit, state.used));
}

/** Credit no live hold has claimed. */
export function creditFree(state: CounterState, terms: QuotaTerms, usage: GrantUsage): number {
  return Math.max(0, creditAvailable(terms.grants, usage) - heldBeyondLimit(state, terms.limit));
}

/**
 * `remaining` in every answer and decision under a limit: the unused part of the limit (holds
 * count as used) plus the credit still free.
 */
export function remainingWithin(limit: number, usedWithHolds: number, freeCredit: number): number {
  return Math.max(0, limit - usedWithHolds) + freeCredit;
}

export function remainingOf(state: CounterState, terms: QuotaTerms, usage: GrantUsage): number | null {
  if (terms.limit === null) return null;
  return remainingWithin(terms.limit, state.used + state.held, creditFree(state, terms, usage));
}

/** The answer's fields for a counter as it stands after the event (or, refused, as it stood). */
export function answerOf(
  accepted: boolean,
  state: CounterState,
  terms: QuotaTerms,
  usage: GrantUsage,
  overage = 0,
  creditUsed = 0,
): QuotaAnswer {
  return {
    accepted,
    ...(accepted ? {} : { reason: 'limit_exceeded' as const }),
    used: state.used + state.held,
    limit: terms.limit,
    remaining: remainingOf(state, terms, usage),
    resetsAt: terms.period.end,
    periodStart: terms.period.start,
    overage,
    creditUsed,
  };
}

/** What the counter grows by: the value (sum), the rise of the peak (max), 1 for a new member (unique). */
export function countedAmount(
  aggregation: Aggregation,
  value: number,
  used: number,
  knownMember: boolean,
): number {
  switch (aggregation) {
    case 'sum':
      return value;
    case 'max':
      return Math.max(0, value - used);
    case 'unique':
      return knownMember ? 0 : 1;
  }
}

export interface EventPlan {
  fits: boolean;
  after: CounterState;
  /** [grant id, amount] in draw order. */
  draws: Array<[string, number]>;
  credit: number;
  overage: number;
  /** Thresholds (percent) this event crossed. */
  crossed: number[];
}

/**
 * What consuming `add` more does to the counter. `reserved`: the amount was held before, so it is
 * accepted whatever the limit says now (the hold was already removed from `state`).
 */
export function planEvent(
  state: CounterState,
  usage: GrantUsage,
  terms: QuotaTerms,
  add: number,
  reserved = false,
): EventPlan {
  let credit = 0;
  let overage = 0;
  const draws: Array<[string, number]> = [];
  if (terms.limit !== null && add > 0) {
    const room = Math.max(0, terms.limit - state.used - state.held);
    const beyond = Math.max(0, add - room);
    const free = creditFree(state, terms, usage);
    if (beyond > free && terms.overage === 'deny' && !reserved) {
      return { fits: false, after: state, draws, credit: 0, overage: 0, crossed: [] };
    }
    credit = Math.min(beyond, free);
    overage = beyond - credit;
    let left = credit;
    for (const g of terms.grants) {
      if (left <= 0) break;
      const take = Math.min(left, Math.max(0, g.amount - (usage[g.id] ?? 0)));
      if (take > 0) draws.push([g.id, take]);
      left -= take;
    }
  }
  const after: CounterState = {
    used: state.used + add,
    held: state.held,
    overage: state.overage + overage,
    creditUsed: state.creditUsed + credit,
  };
  return {
    fits: true,
    after,
    draws,
    credit,
    overage,
    crossed: crossedThresholds(state.used, after.used, terms),
  };
}

export function crossedThresholds(before: number, after: number, terms: QuotaTerms): number[] {
  const { limit } = terms;
  if (limit === null || limit <= 0) return [];
  return terms.thresholds.filter((pct) => {
    const at = (limit * pct) / 100;
    return before < at && after >= at;
  });
}

/** Whether a hold of `amount` fits now (holds never draw credit; they claim it). */
export function holdFits(state: CounterState, usage: GrantUsage, terms: QuotaTerms, amount: number): boolean {
  if (terms.overage === 'allow') return true;
  const remaining = remainingOf(state, terms, usage);
  return remaining === null || amount <= remaining;
}

export function withDraws(usage: GrantUsage, draws: ReadonlyArray<[string, number]>): GrantUsage {
  if (draws.length === 0) return usage;
  const next: Record<string, number> = { ...usage };
  for (const [id, amount] of draws) next[id] = (next[id] ?? 0) + amount;
  return next;
}

// The book: one customer's feature over time.

export type HoldStatus = 'held' | 'committed' | 'released' | 'expired';

export interface QuotaHold {
  amount: number;
  expiresAt: number;
  /** The period the hold counts in (and a commit is counted in). */
  period: QuotaPeriod;
  status: HoldStatus;
  committedAmount: number | null;
}

/** A period's stored counter (holds are kept apart, by id). */
export interface PeriodCounter {
  used: number;
  overage: number;
  creditUsed: number;
  /** Distinct members counted (`unique`). */
  members: ReadonlySet<string>;
}

export interface QuotaBook {
  /** By period start (ms). */
  counters: ReadonlyMap<number, PeriodCounter>;
  grantUsage: GrantUsage;
  holds: ReadonlyMap<string, QuotaHold>;
  /** The first answer to each idempotency key (refusals included); a commit's key is `reservation:<id>`. */
  answers: ReadonlyMap<string, QuotaAnswer>;
}

export const EMPTY_BOOK: QuotaBook = {
  counters: new Map(),
  grantUsage: {},
  holds: new Map(),
  answers: new Map(),
};

const EMPTY_PERIOD: PeriodCounter = { used: 0, overage: 0, creditUsed: 0, members: new Set() };

export function periodCounter(book: QuotaBook, period: QuotaPeriod): PeriodCounter {
  return book.counters.get(period.start.getTime()) ?? EMPTY_PERIOD;
}

/** A hold counts until it is settled or its time is up (`expiresAt <= now` no longer counts). */
export function isLive(hold: QuotaHold, now: number): boolean {
  return hold.status === 'held' && hold.expiresAt > now;
}

/** The counter of `period` at `now`: live holds of that period count as held. */
export function counterAt(book: QuotaBook, period: QuotaPeriod, now: number, except?: string): CounterState {
  const c = periodCounter(book, period);
  let held = 0;
  for (const [id, h] of book.holds)
    if (id !== except && isLive(h, now) && h.period.start.getTime() === period.start.getTime())
      held += h.amount;
  return { used: c.used, held, overage: c.overage, creditUsed: c.creditUsed };
}

export interface UsageInput {
  idempotencyKey: string;
  value: number;
  /** `unique` only. */
  member: string | null;
}

export interface Step<R> {
  book: QuotaBook;
  result: R;
}

/** Check-and-consume one event: a known key replays its first answer and changes nothing. */
export function record(
  book: QuotaBook,
  event: UsageInput,
  terms: QuotaTerms,
  now: number,
): Step<QuotaAnswer> {
  const prior = book.answers.get(event.idempotencyKey);
  if (prior) return { book, result: prior };
  const state = counterAt(book, terms.period, now);
  const counter = periodCounter(book, terms.period);
  const known = event.member !== null && counter.members.has(event.member);
  const add = countedAmount(terms.aggregation, event.value, state.used, known);
  const plan = planEvent(state, book.grantUsage, terms, add);
  const answers = new Map(book.answers);
  if (!plan.fits) {
    const answer = answerOf(false, state, terms, book.grantUsage);
    answers.set(event.idempotencyKey, answer);
    return { book: { ...book, answers }, result: answer };
  }
  const grantUsage = withDraws(book.grantUsage, plan.draws);
  const answer = answerOf(true, plan.after, terms, grantUsage, plan.overage, plan.credit);
  answers.set(event.idempotencyKey, answer);
  const members =
    terms.aggregation === 'unique' && event.member !== null && add > 0
      ? new Set([...counter.members, event.member])
      : counter.members;
  return {
    book: { ...book, answers, grantUsage, counters: withCounter(book, terms.period, plan, add, members) },
    result: answer,
  };
}

export interface HoldInput {
  id: string;
  amount: number;
  expiresAt: number;
}

/** Holds `amount` if it fits (under `allow` it always does); the answer counts the hold as used. */
export function hold(
  book: QuotaBook,
  request: HoldInput,
  terms: QuotaTerms,
  now: number,
): Step<{ held: boolean; answer: QuotaAnswer }> {
  const state = counterAt(book, terms.period, now);
  const fits = holdFits(state, book.grantUsage, terms, request.amount);
  const after = fits ? { ...state, held: state.held + request.amount } : state;
  const answer = answerOf(fits, after, terms, book.grantUsage);
  if (!fits) return { book, result: { held: false, answer } };
  const holds = new Map(book.holds);
  holds.set(request.id, {
    amount: request.amount,
    expiresAt: request.expiresAt,
    period: terms.period,
    status: 'held',
    committedAmount: null,
  });
  return { book: { ...book, holds }, result: { held: true, answer } };
}

export type CommitResult =
  | { committed: true; status: 'committed'; answer: QuotaAnswer }
  | { committed: false; status: HoldStatus };

/**
 * Turns a live hold into usage of `amount` in the hold's period, accepted whatever the limit says
 * now (it was promised); the rest of the hold is freed. A commit repeated replays its answer; a
 * hold that is settled or whose time is up is not committed (the latter becomes `expired`).
 */
export function commit(
  book: QuotaBook,
  id: string,
  amount: number,
  terms: QuotaTerms,
  now: number,
): Step<CommitResult> {
  const key = `reservation:${id}`;
  const prior = book.answers.get(key);
  const h = book.holds.get(id);
  if (!h) return { book, result: { committed: false, status: 'expired' } };
  if (prior) return { book, result: { committed: true, status: 'committed', answer: prior } };
  if (h.status !== 'held') return { book, result: { committed: false, status: h.status } };
  if (h.expiresAt <= now)
    return settle(book, id, 'expired', null, (status) => ({ committed: false, status }));
  const t: QuotaTerms = { ...terms, period: h.period };
  const state = counterAt(book, h.period, now, id);
  const plan = planEvent(state, book.grantUsage, t, amount, true);
  const grantUsage = withDraws(book.grantUsage, plan.draws);
  const answer = answerOf(true, plan.after, t, grantUsage, plan.overage, plan.credit);
  const answers = new Map(book.answers);
  answers.set(key, answer);
  const holds = new Map(book.holds);
  holds.set(id, { ...h, status: 'committed', committedAmount: amount });
  const members = periodCounter(book, h.period).members;
  return {
    book: { answers, holds, grantUsage, counters: withCounter(book, h.period, plan, amount, members) },
    result: { committed: true, status: 'committed', answer },
  };
}

/** Frees a hold: `released`, or `expired` when its time was already up; a settled hold keeps its state. */
export function release(book: QuotaBook, id: string, now: number): Step<HoldStatus> {
  const h = book.holds.get(id);
  if (!h) return { book, result: 'expired' };
  if (h.status !== 'held') return { book, result: h.status };
  return settle(book, id, h.expiresAt <= now ? 'expired' : 'released', null, (status) => status);
}

/** Settles every hold whose time is up as `expired` (they stopped counting already); returns how many. */
export function expire(book: QuotaBook, now: number): Step<number> {
  let count = 0;
  const holds = new Map(book.holds);
  for (const [id, h] of book.holds) {
    if (h.status === 'held' && h.expiresAt <= now) {
      holds.set(id, { ...h, status: 'expired' });
      count++;
    }
  }
  return { book: count > 0 ? { ...book, holds } : book, result: count };
}

function settle<R>(
  book: QuotaBook,
  id: string,
  status: Exclude<HoldStatus, 'held'>,
  committedAmount: number | null,
  result: (status: HoldStatus) => R,
): Step<R> {
  const h = book.holds.get(id);
  if (!h) return { book, result: result('expired') };
  const holds = new Map(book.holds);
  holds.set(id, { ...h, status, committedAmount });
  return { book: { ...book, holds }, result: result(status) };
}

function withCounter(
  book: QuotaBook,
  period: QuotaPeriod,
  plan: EventPlan,
  add: number,
  members: ReadonlySet<string>,
): ReadonlyMap<number, PeriodCounter> {
  const c = periodCounter(book, period);
  const counters = new Map(book.counters);
  counters.set(period.start.getTime(), {
    used: c.used + add,
    overage: c.overage + plan.overage,
    creditUsed: c.creditUsed + plan.credit,
    members,
  });
  return counters;
}
