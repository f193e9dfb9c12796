/**
 * The rules of the anomaly scan, as pure functions of what the scan read and `now`.
 *
 * - overlap: an unconditional override on a feature the customer's plan (or an add-on) already
 *   grants unconditionally, that either repeats the plan (`duplicate`: same enabled, same config
 *   value, same limit) or takes away what it gives (`contradicts`: disables a feature the plan
 *   enables, or sets a lower metered limit). A config override with another value, or a higher
 *   limit, is an ordinary exception and is not flagged.
 * - orphan: an exception of a customer whose subscriptions have all ended (`subscription_ended`),
 *   or one that runs past the end already set for all of its live subscriptions
 *   (`outlives_subscription`). A customer that never had a subscription is not flagged.
 * - spike: a UTC day's usage of a metered feature above SPIKE_FACTOR times the mean daily usage of
 *   the SPIKE_BASELINE_DAYS before it (days without usage count as 0), at least SPIKE_MIN_USAGE, and
 *   with some usage in the baseline (a customer's first day of use is not a spike).
 */
import type { JsonValue, OverrideEffect, PlanEntitlement, Subscription } from './types.ts';

export const SPIKE_FACTOR = 5;
export const SPIKE_BASELINE_DAYS = 14;
export const SPIKE_MIN_USAGE = 100;
const DAY_MS = 86_400_000;

export type Overlap = { relation: 'duplicate' | 'contradicts' };

function sameJson(a: JsonValue, b: JsonValue): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) =>
    sameJson((a as Record<string, JsonValue>)[k]!, (b as Record<string, JsonValue>)[k] as JsonValue),
  );
}

/** How an override relates to what the plan gives for its feature; null when it is a plain exception. */
export function overlapOf(effect: OverrideEffect, plan: PlanEntitlement): Overlap | null {
  switch (effect.type) {
    case 'boolean':
      if (plan.type !== 'boolean' || !plan.enabled) return null;
      return { relation: effect.enabled ? 'duplicate' : 'contradicts' };
    case 'config':
      return plan.type === 'config' && sameJson(effect.value, plan.value) ? { relation: 'duplicate' } : null;
    case 'metered': {
      if (plan.type !== 'metered') return null;
      if (effect.limit === plan.limit) return { relation: 'duplicate' };
      const lower = effect.limit !== null && (plan.limit === null || effect.limit < plan.limit);
      return lower ? { relation: 'contradicts' } : null;
    }
  }
}

export type Orphan =
  | { reason: 'subscription_ended'; ended_at: string | null }
  | { reason: 'outlives_subscription'; subscription_ends_at: string };

/**
 * `subscriptions` are as they stand at `now` (derived state). `exceptionEnd` is when the exception
 * ends by itself (null: never).
 */
export function orphanOf(subscriptions: Subscription[], exceptionEnd: Date | null, now: Date): Orphan | null {
  if (subscriptions.length === 0) return null;
  const ended = (s: Subscription) =>
    s.status === 'canceled' || s.status === 'expired' || (s.endedAt !== null && s.endedAt <= now);
  const live = subscriptions.filter((s) => !ended(s));
  if (live.length === 0) {
    const ends = subscriptions.flatMap((s) => (s.endedAt ? [s.endedAt.getTime()] : []));
    return {
      reason: 'subscription_ended',
      ended_at: ends.length > 0 ? new Date(Math.max(...ends)).toISOString() : null,
    };
  }
  const endOf = (s: Subscription) => s.endedAt ?? (s.cancelAtPeriodEnd ? s.currentPeriodEnd : null);
  const endings = live.map(endOf);
  if (endings.some((e) => e === null)) return null;
  const last = Math.max(...endings.map((e) => e!.getTime()));
  if (exceptionEnd !== null && exceptionEnd.getTime() <= last) return null;
  return { reason: 'outlives_subscription', subscription_ends_at: new Date(last).toISOString() };
}

export interface Spike {
  day: string;
  usage: number;
  baseline_mean: number;
  factor: number;
}

/** `YYYY-MM-DD` of the UTC day holding `t`. */
export function utcDay(t: Date): string {
  return t.toISOString().slice(0, 10);
}

/**
 * Spikes among `days` (UTC `YYYY-MM-DD`), given the usage per UTC day (missing days are 0).
 */
export function spikesOf(usageByDay: ReadonlyMap<string, number>, days: string[]): Spike[] {
  const spikes: Spike[] = [];
  for (const day of days) {
    const usage = usageByDay.get(day) ?? 0;
    if (usage < SPIKE_MIN_USAGE) continue;
    const start = Date.parse(`${day}T00:00:00.000Z`);
    let total = 0;
    for (let i = 1; i <= SPIKE_BASELINE_DAYS; i++)
      total += usageByDay.get(utcDay(new Date(start - i * DAY_MS))) ?? 0;
    const mean = total / SPIKE_BASELINE_DAYS;
    if (mean > 0 && usage > SPIKE_FACTOR * mean)
      spikes.push({ day, usage, baseline_mean: mean, factor: SPIKE_FACTOR });
  }
  return spikes;
}
