import { extendTrial, isInTrial } from '../../domain/trial-extension.ts';
import type { TxCtx } from '../../platform/context.ts';
import { Conflict, Unprocessable } from '../../platform/errors.ts';
import { lockCustomerRow } from '../customers/repo.ts';
import { catchUpRow } from '../subscriptions/catch-up.ts';
import { recordSubscriptionChange } from '../subscriptions/changes.ts';
import { lockSubscription, saveSubscription } from '../subscriptions/repo.ts';

export interface TrialExtensionChange {
  subscription_id: string;
  days: number;
}

const notInTrial = (message: string) =>
  new Unprocessable('invalid_change', message, [{ path: 'change.subscription_id', message }]);

/**
 * The subscription a trial extension names, locked and caught up to now: it must be the
 * customer's, in a trial that has not ended, and not linked to Stripe (whose trial Tessera does
 * not move). Returns its plan key, which policies match on.
 */
export async function trialToExtend(t: TxCtx, customerId: string, change: TrialExtensionChange) {
  await lockCustomerRow(t.tx, t.environment, customerId);
  const row = await lockSubscription(t.tx, t.environment, change.subscription_id);
  if (!row || row.customer_id !== customerId) throw notInTrial('no such subscription of this customer');
  const { state } = await catchUpRow(t, row);
  if (!isInTrial(state, t.now)) throw notInTrial('the subscription is not in a trial');
  if (state.stripe) throw notInTrial('the subscription is linked to Stripe: extend the trial there');
  return state;
}

/** Applies an approved extension; a trial that ended meanwhile answers 409 `illegal_transition`. */
export async function applyTrialExtension(t: TxCtx, customerId: string, change: TrialExtensionChange) {
  await lockCustomerRow(t.tx, t.environment, customerId);
  const row = await lockSubscription(t.tx, t.environment, change.subscription_id);
  const { state } = row ? await catchUpRow(t, row) : { state: null };
  const next = state ? extendTrial(state, change.days, t.now) : null;
  if (!state || !next)
    throw new Conflict(
      'illegal_transition',
      `Subscription '${change.subscription_id}' is no longer in a trial`,
    );
  await saveSubscription(t.tx, t.environment, next, t.now);
  recordSubscriptionChange(t, 'subscription.trial_extended', state, next);
  return next;
}
