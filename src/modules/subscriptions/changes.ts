import { IllegalTransitionError } from '../../domain/subscription-state.ts';
import type { Subscription } from '../../domain/types.ts';
import type { TxCtx } from '../../platform/context.ts';
import { Conflict } from '../../platform/errors.ts';
import { toSubscriptionResource } from './resource.ts';

/**
 * Records a change to a subscription inside its transaction: the customer's entitlement version
 * grows, and the audit record and the `subscription.updated` outbox event are written at commit.
 */
export function recordSubscriptionChange(
  t: TxCtx,
  action: string,
  before: Subscription | null,
  after: Subscription,
  extra: Record<string, unknown> = {},
): void {
  const subscription = toSubscriptionResource(after);
  t.touchCustomer(after.customerId);
  t.audit({
    action,
    target: { type: 'subscription', id: after.id },
    customerId: after.customerId,
    before: before ? toSubscriptionResource(before) : undefined,
    after: subscription,
  });
  t.emit({
    topic: 'subscription.updated',
    customerId: after.customerId,
    payload: { action, ...extra, subscription },
  });
}

/** The state machine's IllegalTransitionError as a 409 `illegal_transition` whose detail names the state. */
export async function asTransitionConflict<T>(fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof IllegalTransitionError) throw new Conflict('illegal_transition', err.message);
    throw err;
  }
}
