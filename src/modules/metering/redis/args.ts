/** Arguments the Redis scripts take, built from domain values (see lua.ts for their layout). */
import type { UsageTerms } from '../store.ts';

/** The store's settings the consume script's terms carry. */
export interface TermsLimits {
  /** How long an idempotency answer is remembered (at least 7 days). */
  idempotencyTtlMs: number;
  /** How long a counter outlives its period. */
  retentionMs: number;
  /** Distinct members counted exactly per period before the HyperLogLog takes over. */
  exactMembers: number;
}

/** The consume script's terms: one string per terms object. */
export function packTerms(terms: UsageTerms, options: TermsLimits): string {
  const p = terms.period;
  return [
    terms.aggregation,
    terms.limit ?? '',
    terms.overage,
    options.retentionMs,
    options.idempotencyTtlMs,
    terms.thresholds.join(','),
    p.end?.getTime() ?? '',
    p.start.getTime(),
    options.exactMembers,
    terms.grants.map((g) => `${g.id},${g.amount}`).join(','),
  ].join('|');
}

export function grantArgs(terms: UsageTerms): Array<string | number> {
  return terms.grants.flatMap((g) => [g.id, g.amount]);
}
