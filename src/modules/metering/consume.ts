/**
 * The check-and-consume arithmetic, pure. The Postgres store runs it under a per-customer lock;
 * the Redis store runs its Lua twin (lua.ts) atomically; the contract suite holds them to the
 * same answers, and test/domain/metering-consume.test.ts holds this one to its invariants.
 *
 * A live reservation (`held`) takes room under the limit first and then claims credit, so an
 * event may only use credit that no reservation has claimed. What the limit does not cover is
 * drawn from the grants in the order given (burn-down order); under `deny` an event that does not
 * fit is refused whole, under `allow` the part that credit cannot pay is overage.
 */
import type { CreditTerm, UsageTerms } from './store.ts';

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

export function creditAvailable(grants: readonly CreditTerm[], usage: GrantUsage): number {
  let total = 0;
  for (const g of grants) total += Math.max(0, g.amount - (usage[g.id] ?? 0));
  return total;
}

/** The part of the live holds that lies past the limit, so claims credit. */
export function heldBeyondLimit(state: CounterState, limit: number | null): number {
  if (limit === null) return 0;
  return Math.max(0, state.used + state.held - Math.max(limit, state.used));
}

/** Unused limit plus credit no hold has claimed; null when unlimited. */
export function remainingOf(state: CounterState, terms: UsageTerms, usage: GrantUsage): number | null {
  if (terms.limit === null) return null;
  const room = Math.max(0, terms.limit - state.used - state.held);
  const credit = Math.max(0, creditAvailable(terms.grants, usage) - heldBeyondLimit(state, terms.limit));
  return room + credit;
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
  terms: UsageTerms,
  add: number,
  reserved = false,
): EventPlan {
  let credit = 0;
  let overage = 0;
  const draws: Array<[string, number]> = [];
  if (terms.limit !== null && add > 0) {
    const room = Math.max(0, terms.limit - state.used - state.held);
    const beyond = Math.max(0, add - room);
    const free = Math.max(0, creditAvailable(terms.grants, usage) - heldBeyondLimit(state, terms.limit));
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

export function crossedThresholds(before: number, after: number, terms: UsageTerms): number[] {
  const { limit } = terms;
  if (limit === null || limit <= 0) return [];
  return terms.thresholds.filter((pct) => {
    const at = (limit * pct) / 100;
    return before < at && after >= at;
  });
}

/** Whether a hold of `amount` fits now (holds never draw credit; they claim it). */
export function holdFits(state: CounterState, usage: GrantUsage, terms: UsageTerms, amount: number): boolean {
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
