import { describeEntitlements } from '../../domain/decide.ts';
import { resolveEntitlements } from '../../domain/resolve.ts';
import type { TxCtx } from '../../platform/context.ts';
import { loadCustomerSnapshot } from '../entitlements/snapshot.ts';
import type { RequestFacts } from './policies.ts';

const NO_USAGE = () => ({ used: 0 });

/** Percent increase from `current` to `next`; null is unlimited on either side. */
export function increasePercent(current: number | null, next: number | null): number {
  if (next === null) return current === null ? 0 : Number.POSITIVE_INFINITY;
  if (current === null) return 0;
  if (current <= 0) return next > 0 ? Number.POSITIVE_INFINITY : 0;
  return ((next - current) / current) * 100;
}

/**
 * What a request is measured by, against what the customer holds now (read in the transaction):
 * a metered override by its new limit against the limit held; a grant by its amount against the
 * limit and credit held; a trial extension by its days; add-ons have no size. The customer's
 * attributes come along.
 */
export async function requestFacts(
  t: TxCtx,
  customerId: string,
  kind: string,
  change: Record<string, unknown>,
): Promise<RequestFacts> {
  const snapshot = await loadCustomerSnapshot(t.tx, t.environment, customerId, t.now);
  const facts: RequestFacts = { increasePercent: null, amount: null, attributes: snapshot.attributes };
  if (kind === 'trial_extension') return { ...facts, amount: Number(change.days) };
  const feature = typeof change.feature === 'string' ? snapshot.features.get(change.feature) : undefined;
  if (kind === 'addon' || feature?.type !== 'metered') return facts;
  const resolved = resolveEntitlements(snapshot, t.now, NO_USAGE, feature.key);
  const held = describeEntitlements(resolved).find((e) => e.feature === feature.key);
  const limit = held?.hasAccess && held.limit !== undefined ? held.limit : 0;
  if (kind === 'override') {
    const next = change.limit === null || change.limit === undefined ? null : Number(change.limit);
    return {
      ...facts,
      increasePercent: increasePercent(limit, next),
      amount: next ?? Number.POSITIVE_INFINITY,
    };
  }
  const metered = resolved.entitlements.get(feature.key);
  const credit = metered?.type === 'metered' ? metered.credit.available : 0;
  const amount = Number(change.amount);
  const current = limit === null ? null : limit + credit;
  return {
    ...facts,
    increasePercent: increasePercent(current, current === null ? null : current + amount),
    amount,
  };
}
