/**
 * Credit burn-down: which grant pays for usage beyond a metered limit. Pure; see BURN-DOWN.md for
 * the ordering rule and why it is what it is.
 */
import type { CreditGrant } from './types.ts';

/**
 * Remaining credit per grant id. A grant missing from the map has not been drawn from yet, so its
 * balance is its full amount. A plain record (not a Map) so it can be stored as JSON.
 */
export type GrantBalances = Readonly<Record<string, number>>;

export interface CreditDraw {
  at: Date;
  amount: number;
}

export interface BurnDownResult {
  balances: GrantBalances;
  /** Drawn amount that grants paid for. */
  covered: number;
  /** Drawn amount no grant could pay for: overage. */
  uncovered: number;
}

/**
 * A grant pays for a draw at `at` when it has started, has not expired and has not been voided by
 * then. Expiry and voiding are instants, not rewrites: a grant voided today still paid for
 * yesterday's usage, which keeps a burn-down replayable from history.
 */
export function isGrantEffective(grant: CreditGrant, at: Date): boolean {
  const t = at.getTime();
  return (
    grant.effectiveAt.getTime() <= t &&
    (grant.expiresAt === null || grant.expiresAt.getTime() > t) &&
    (grant.voidedAt === null || grant.voidedAt.getTime() > t)
  );
}

/** Lowest priority number first, then the earliest expiry (never-expiring last), then the oldest, then id. */
export function compareGrants(a: CreditGrant, b: CreditGrant): number {
  return (
    a.priority - b.priority ||
    expiryKey(a) - expiryKey(b) ||
    a.createdAt.getTime() - b.createdAt.getTime() ||
    (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  );
}

/** The grants in the order they are drawn from (a sorted copy). */
export function orderGrants(grants: readonly CreditGrant[]): CreditGrant[] {
  return [...grants].sort(compareGrants);
}

export function balanceOf(grant: CreditGrant, balances: GrantBalances): number {
  return balances[grant.id] ?? grant.amount;
}

/**
 * What a grant has left to pay with at `at`: its unburnt balance while it is effective, its whole
 * amount before it takes effect (nothing can have drawn from it), and 0 once it has expired or
 * been voided (what it had left then can no longer pay for anything).
 */
export function remainingOf(grant: CreditGrant, balances: GrantBalances, at: Date): number {
  if (isGrantEffective(grant, at)) return Math.max(0, balanceOf(grant, balances));
  return grant.effectiveAt.getTime() > at.getTime() ? grant.amount : 0;
}

/** Credit that could pay for usage at `at`: the remaining balances of the grants effective then. */
export function availableCredit(grants: readonly CreditGrant[], balances: GrantBalances, at: Date): number {
  let total = 0;
  for (const grant of grants) {
    if (isGrantEffective(grant, at)) total += Math.max(0, balanceOf(grant, balances));
  }
  return total;
}

/**
 * Runs `draws` (usage beyond the plan's limit) through the grants in time order, starting from
 * `start` (the balances a previous run ended with; empty for a fresh start).
 *
 * Draws after `now` have not happened and are left out entirely; non-positive draws are ignored
 * (a refund is not a draw). Because each draw only looks at the balances and its own instant,
 * running the draws in two steps and feeding the first result in as `start` gives the same answer
 * as running them at once.
 */
export function burnDown(
  grants: readonly CreditGrant[],
  draws: readonly CreditDraw[],
  now: Date,
  start: GrantBalances = {},
): BurnDownResult {
  const ordered = orderGrants(grants);
  const balances: Record<string, number> = { ...start };
  let covered = 0;
  let uncovered = 0;
  const due = draws
    .filter((draw) => draw.amount > 0 && draw.at.getTime() <= now.getTime())
    .sort((a, b) => a.at.getTime() - b.at.getTime());
  for (const draw of due) {
    let left = draw.amount;
    for (const grant of ordered) {
      if (left <= 0) break;
      if (!isGrantEffective(grant, draw.at)) continue;
      const balance = balanceOf(grant, balances);
      if (balance <= 0) continue;
      const take = Math.min(balance, left);
      balances[grant.id] = balance - take;
      left -= take;
      covered += take;
    }
    uncovered += left;
  }
  return { balances, covered, uncovered };
}

function expiryKey(grant: CreditGrant): number {
  return grant.expiresAt === null ? Number.POSITIVE_INFINITY : grant.expiresAt.getTime();
}
