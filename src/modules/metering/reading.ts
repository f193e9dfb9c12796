import type { UsageReading } from '../../domain/resolved.ts';
import type { CustomerSnapshot } from '../../domain/types.ts';
import { type CounterState, type GrantUsage, heldBeyondLimit } from './consume.ts';
import { usageTermsOf } from './terms.ts';

const NO_BALANCES: Readonly<Record<string, number>> = Object.freeze({});

/**
 * What the decision engine sees of a counter: live holds count as used, and the credit they claim
 * past the limit is drawn (virtually, in burn-down order) from the balances, so `remaining` and
 * `overage` in a decision match what `POST /v1/usage` would accept.
 */
export function readingOf(
  snapshot: CustomerSnapshot,
  feature: string,
  state: CounterState,
  usage: GrantUsage,
  now: Date,
): UsageReading {
  // No grants and no holds (most checks): nothing to draw, no balances.
  if (snapshot.grants.length === 0 && state.held <= 0)
    return { used: state.used + state.held, creditUsed: state.creditUsed, grantBalances: NO_BALANCES };
  const grants = snapshot.grants.filter((g) => g.feature === feature);
  const balances: Record<string, number> = {};
  const aggregation = snapshot.features.get(feature)?.aggregation ?? 'sum';
  // Credit pays for `sum` features only; the others see none left.
  for (const g of grants)
    balances[g.id] = aggregation === 'sum' ? Math.max(0, g.amount - (usage[g.id] ?? 0)) : 0;
  let claimed = 0;
  if (state.held > 0) {
    const outcome = usageTermsOf(snapshot, feature, now);
    if (outcome.kind === 'metered') {
      let left = heldBeyondLimit(state, outcome.terms.limit);
      for (const g of outcome.terms.grants) {
        const take = Math.min(left, balances[g.id] ?? 0);
        balances[g.id] = (balances[g.id] ?? 0) - take;
        left -= take;
        claimed += take;
      }
    }
  }
  return { used: state.used + state.held, creditUsed: state.creditUsed + claimed, grantBalances: balances };
}
