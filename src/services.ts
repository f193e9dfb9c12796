/**
 * The modules' services as every service verb reaches them (`ctx.deps.services`): declared here at
 * the root, built once by src/runtime.ts. Platform's `Services` interface (platform/context.ts) is
 * empty; this file merges the shape into it, so platform carries the services without importing a
 * module. Types only: nothing here runs, and nothing registers itself anywhere.
 */
import type { StripeEventQueue } from './modules/billing/intake.ts';
import type { CustomerDeletionHook } from './modules/customers/service.ts';
import type { DecisionEngine } from './modules/entitlements/engine.ts';
import type { Metering } from './modules/metering/metering.ts';
import type { LifecycleGateway } from './modules/subscriptions/lifecycle.ts';

declare module './platform/context.ts' {
  interface Services {
    /** The PDP with its snapshot cache; reads live counters from `metering.store`. */
    decisions: DecisionEngine;
    /** Usage counters (Redis or Postgres), the ledger flusher and the reservation sweeper. */
    metering: Metering;
    /** Run in order inside a customer deletion's transaction (subscriptions: end them). */
    customerDeletionHooks: CustomerDeletionHook[];
    /** Pushes Tessera-led subscription changes to Stripe before they commit (billing implements it). */
    lifecycle: LifecycleGateway;
    /** Where webhook intake and replay hand stored Stripe events to be processed. */
    stripeEvents: StripeEventQueue;
  }
}

export type { Services } from './platform/context.ts';
