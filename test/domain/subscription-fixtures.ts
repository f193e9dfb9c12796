/** Shared setup for the subscription tests: a small catalog, a starter, and random subscriptions. */
import fc from 'fast-check';
import {
  applyEvent,
  IllegalTransitionError,
  type PlanLookup,
  type StartSubscriptionInput,
  type SubscriptionEvent,
  startSubscription,
  stateAt,
} from '../../src/domain/subscription-state.ts';
import type { Subscription } from '../../src/domain/types.ts';

export const DAY = 86_400_000;
export const GRACE_MS = 3 * DAY;
export const at = (iso: string) => new Date(iso);
/** Jan 31, so the first billing periods exercise month-end clamping. */
export const T0 = at('2024-01-31T10:00:00Z');

const LATEST_VERSIONS: Record<string, number> = { basic: 3, pro: 7, team: 2 };
export const plans: PlanLookup = { latestVersion: (planKey) => LATEST_VERSIONS[planKey] ?? null };

export function started(input: Partial<StartSubscriptionInput> = {}, now: Date = T0): Subscription {
  return startSubscription(
    {
      id: 'sub_1',
      customerId: 'cus_1',
      planKey: 'pro',
      planVersion: 7,
      addon: false,
      quantity: 1,
      trialDays: null,
      trialOnEnd: null,
      trialDowngradeTo: null,
      startsAt: T0,
      ...input,
    },
    now,
  );
}

/** Start instants biased towards the 28th-31st and Feb 29, where billing periods clamp. */
const startsAtArb = fc.oneof(
  fc.date({ min: at('2020-01-01T00:00:00Z'), max: at('2030-01-01T00:00:00Z'), noInvalidDate: true }),
  fc
    .tuple(
      fc.constantFrom('2023-01-31', '2024-01-29', '2024-02-29', '2024-03-30', '2024-05-31', '2025-08-28'),
      fc.integer({ min: 0, max: DAY - 1 }),
    )
    .map(([day, ms]) => new Date(at(`${day}T00:00:00Z`).getTime() + ms)),
);

const startInputArb: fc.Arbitrary<Partial<StartSubscriptionInput>> = fc
  .record({
    startsAt: startsAtArb,
    trialDays: fc.constantFrom(null, 0, 7, 14, 30),
    trialOnEnd: fc.constantFrom(
      'convert' as const,
      'convert' as const,
      'cancel' as const,
      'downgrade' as const,
    ),
    trialDowngradeTo: fc.constantFrom('basic', 'gone'),
  })
  .map((input) => ({
    ...input,
    trialDowngradeTo: input.trialOnEnd === 'downgrade' ? input.trialDowngradeTo : null,
  }));

const commands: SubscriptionEvent[] = [
  { type: 'convert' },
  { type: 'payment_failed' },
  { type: 'payment_recovered' },
  { type: 'pause' },
  { type: 'resume' },
  { type: 'cancel_at_period_end' },
  { type: 'undo_cancel_at_period_end' },
  { type: 'cancel_scheduled_change' },
  { type: 'start' },
];
const planChangeArb: fc.Arbitrary<SubscriptionEvent> = fc.record({
  type: fc.constantFrom('change_now' as const, 'change_at_period_end' as const),
  planKey: fc.constantFrom('basic', 'pro', 'team'),
  planVersion: fc.option(fc.integer({ min: 1, max: 9 }), { nil: null }),
});

/** Mostly days apart, so histories stay inside trials and periods; sometimes months. */
const gapArb = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 10 * DAY }), weight: 4 },
  { arbitrary: fc.integer({ min: 0, max: 90 * DAY }), weight: 1 },
);

/** Events a person or a webhook sends; cancel_now is rare so most histories stay live. */
export const commandArb: fc.Arbitrary<SubscriptionEvent> = fc.oneof(
  { arbitrary: fc.constantFrom(...commands), weight: 16 },
  { arbitrary: planChangeArb, weight: 8 },
  { arbitrary: fc.constant<SubscriptionEvent>({ type: 'cancel_now' }), weight: 1 },
);

/** Any event, time-driven ones included, to throw at the machine regardless of dueness. */
export const anyEventArb: fc.Arbitrary<SubscriptionEvent> = fc.oneof(
  commandArb,
  fc.constantFrom<SubscriptionEvent>({ type: 'trial_end' }, { type: 'period_end' }, { type: 'grace_end' }),
);

/** Applies `event` or, when it is illegal there, leaves `sub` as it was. */
export function applyIfLegal(sub: Subscription, event: SubscriptionEvent, now: Date): Subscription {
  try {
    return applyEvent(sub, event, now, plans);
  } catch (error) {
    if (error instanceof IllegalTransitionError) return sub;
    throw error;
  }
}

/**
 * A stored subscription with a random history: started, then commands at increasing instants,
 * each applied the way a service would (to the state at that instant). `lastWrite` is the
 * instant of the last command; the stored form is deliberately left un-rolled after it.
 */
export const storedSubscriptionArb: fc.Arbitrary<{ sub: Subscription; lastWrite: Date }> = fc
  .record({
    input: startInputArb,
    history: fc.array(fc.record({ gapMs: gapArb, event: commandArb }), {
      maxLength: 8,
    }),
  })
  .map(({ input, history }) => {
    let sub = started(input, input.startsAt);
    let now = sub.startedAt;
    for (const { gapMs, event } of history) {
      now = new Date(now.getTime() + gapMs);
      sub = applyIfLegal(stateAt(sub, now, plans), event, now);
    }
    return { sub, lastWrite: now };
  });

/** An instant from shortly before the last write to three years after it. */
export const offsetArb = fc.integer({ min: -30 * DAY, max: 3 * 366 * DAY });
