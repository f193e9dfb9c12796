/**
 * Where a subscription change made through Tessera's API is pushed to the billing system before it
 * commits. Subscriptions declare the port; billing implements it (modules/billing/lifecycle-push.ts)
 * and the runtime wires it into `services.lifecycle`, so this slice never imports billing.
 */
import type { TxCtx } from '../../platform/context.ts';

export type LifecycleChange =
  | { kind: 'change'; planKey: string; planVersion: number; timing: 'immediate' | 'period_end' }
  | { kind: 'cancel'; timing: 'immediate' | 'period_end' }
  /** A cancellation at the period end taken back. */
  | { kind: 'uncancel' };

export interface LifecyclePush {
  subscriptionId: string;
  customerId: string;
  /** The linked Stripe subscription and item, or null when it is not linked. */
  stripe: { subscriptionId: string; itemId: string | null } | null;
  change: LifecycleChange;
  /**
   * Stable for one attempt at one transition: the same request retried after a refusal gives the
   * same key; the next transition of the subscription gives another.
   */
  idempotencyKey: string;
}

export interface LifecycleGateway {
  /** Throws (an AppError, e.g. 502) to refuse: the caller's transaction then rolls back. */
  push(t: TxCtx, push: LifecyclePush): Promise<void>;
}
