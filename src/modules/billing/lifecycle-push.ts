/**
 * The subscriptions slice's LifecycleGateway for Stripe: where the environment's `lifecycle_owner`
 * is `tessera` and the subscription is linked to a Stripe subscription, a change or cancellation
 * made through Tessera's API is made in Stripe first, with an idempotency key derived from the
 * request, inside the Tessera transaction that then commits it. A Stripe refusal throws a 502
 * and the transaction rolls back: Tessera's state, audit and outbox stay as they were.
 *
 * Proration: an immediate plan change updates the item's price with `create_prorations` (Stripe
 * credits the unused time and charges the new price on the next invoice); a change at the period
 * end updates it with `proration_behavior: none`, so the new price bills from the next renewal.
 * Dropping a scheduled change puts the current plan's price back (again without proration). A
 * cancellation `immediate` cancels the Stripe subscription now; `period_end` sets
 * `cancel_at_period_end`, and taking it back (`/uncancel`) clears it. Pause, resume, seats and
 * trial conversion are not pushed.
 *
 * The Stripe call runs while the transaction holds the customer and subscription locks (bounded
 * by the client's 20 s timeout and two retries); should Tessera's commit fail after Stripe
 * accepted, Stripe is ahead until its webhook brings the change back.
 */
import type Stripe from 'stripe';
import type { TxCtx } from '../../platform/context.ts';
import type { LifecycleGateway, LifecyclePush } from '../subscriptions/lifecycle.ts';
import { stripeConnection } from './settings.ts';
import { callStripe, connectedClient, planPrice } from './stripe-calls.ts';

async function itemOf(client: Stripe, push: LifecyclePush, subscriptionId: string): Promise<string> {
  if (push.stripe?.itemId) return push.stripe.itemId;
  const sub = await callStripe(() => client.subscriptions.retrieve(subscriptionId));
  const item = sub.items.data[0]?.id;
  if (!item) throw new Error(`Stripe subscription ${subscriptionId} has no items`);
  return item;
}

export const stripeLifecycleGateway: LifecycleGateway = {
  async push(t: TxCtx, push: LifecyclePush): Promise<void> {
    if (!push.stripe) return;
    const connection = await stripeConnection(t.deps, t.tx, t.environment);
    if (connection?.lifecycleOwner !== 'tessera') return;
    const { client } = await connectedClient(t, t.tx);
    const subscriptionId = push.stripe.subscriptionId;
    const options: Stripe.RequestOptions = { idempotencyKey: push.idempotencyKey };
    const change = push.change;
    if (change.kind === 'uncancel') {
      await callStripe(() =>
        client.subscriptions.update(subscriptionId, { cancel_at_period_end: false }, options),
      );
      return;
    }
    if (change.kind === 'cancel') {
      if (change.timing === 'immediate') {
        await callStripe(() => client.subscriptions.cancel(subscriptionId, {}, options));
      } else {
        await callStripe(() =>
          client.subscriptions.update(subscriptionId, { cancel_at_period_end: true }, options),
        );
      }
      return;
    }
    const price = await planPrice(t.tx, client, t.environment, change.planKey, change.planVersion);
    const item = await itemOf(client, push, subscriptionId);
    await callStripe(() =>
      client.subscriptions.update(
        subscriptionId,
        {
          items: [{ id: item, price }],
          proration_behavior: change.timing === 'immediate' ? 'create_prorations' : 'none',
        },
        options,
      ),
    );
  },
};
