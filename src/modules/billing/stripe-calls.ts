/** What checkout, the lifecycle push and usage reporting share: Stripe's errors and plan prices. */
import Stripe from 'stripe';
import type { Ctx } from '../../platform/context.ts';
import type { Executor } from '../../platform/db.ts';
import { BadGateway, Unprocessable } from '../../platform/errors.ts';
import { findPlan, findPlanVersionRow } from '../catalog/repo.ts';
import { type StripeConnection, stripeClient, stripeConnection } from './settings.ts';

/** A Stripe refusal or failure, as a 502 carrying Stripe's own message; anything else as it is. */
export function asStripeError(err: unknown): unknown {
  if (err instanceof Stripe.errors.StripeError) {
    return new BadGateway('stripe_error', err.message || 'Stripe refused the request');
  }
  return err;
}

/** Runs one Stripe call, mapping its refusal to a 502. */
export async function callStripe<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw asStripeError(err);
  }
}

export function notConfigured(environment: string): Unprocessable {
  return new Unprocessable(
    'stripe_not_configured',
    `Stripe is not connected in the '${environment}' environment: PUT /v1/stripe/settings with a secret key`,
  );
}

/** The environment's connection and a client, or a 422 when no secret key is set. */
export async function connectedClient(
  ctx: Ctx,
  db: Executor,
): Promise<{ connection: StripeConnection; client: Stripe }> {
  const connection = await stripeConnection(ctx.deps, db, ctx.environment);
  if (!connection?.secretKey) throw notConfigured(ctx.environment);
  return { connection, client: stripeClient(connection.secretKey, ctx.deps.config.stripeApiBase) };
}

/**
 * The Stripe price that sells a plan version: its first price id, else its first lookup key
 * resolved with `prices.list({lookup_keys})`. A plan without either answers 422 `plan_not_mapped`.
 */
export async function planPrice(
  db: Executor,
  client: Stripe,
  environment: string,
  planKey: string,
  version?: number,
): Promise<string> {
  const plan = await findPlan(db, environment, planKey);
  if (!plan) {
    throw new Unprocessable('unknown_plan', `Plan '${planKey}' does not exist`, [
      { path: 'plan', message: 'no such plan' },
    ]);
  }
  const row = await findPlanVersionRow(db, environment, planKey, version ?? plan.latest_version);
  const stripe = (row?.stripe ?? null) as { price_ids?: string[]; lookup_keys?: string[] } | null;
  const priceId = stripe?.price_ids?.[0];
  if (priceId) return priceId;
  const lookupKey = stripe?.lookup_keys?.[0];
  const notMapped = () =>
    new Unprocessable('plan_not_mapped', `Plan '${planKey}' names no Stripe price`, [
      { path: 'plan', message: 'its stripe field lists no price id or lookup key that Stripe knows' },
    ]);
  if (!lookupKey) throw notMapped();
  const prices = await callStripe(() => client.prices.list({ lookup_keys: [lookupKey], limit: 1 }));
  const found = prices.data[0]?.id;
  if (!found) throw notMapped();
  return found;
}
