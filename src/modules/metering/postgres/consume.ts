/** One usage event in the Postgres store, under the customer's advisory lock (state.ts). */

import type { Tx } from '../../../platform/db.ts';
import { type AnswerJson, answerFromJson, answerJson } from '../answer.ts';
import { answerOf, countedAmount, planEvent, withDraws } from '../consume.ts';
import { writeLedgerRows } from '../ledger/ledger.ts';
import type { UsageAnswer, UsageEvent } from '../store.ts';
import { applyPlan, type CounterRef, loadCounter, loadGrantUsage } from './state.ts';

/** One event under the customer's lock: replay, or decide and write everything it changes. */
export async function consumeOne(
  tx: Tx,
  environment: string,
  event: UsageEvent,
  now: Date,
  reservationId: string | null = null,
): Promise<UsageAnswer> {
  const prior = await priorAnswer(tx, environment, event.customerId, event.idempotencyKey);
  if (prior) return answerFromJson(prior);
  const { terms } = event;
  const ref: CounterRef = {
    environment,
    customerId: event.customerId,
    feature: event.feature,
    period: terms.period,
  };
  const state = await loadCounter(tx, ref, now);
  const usage =
    terms.grants.length > 0 ? await loadGrantUsage(tx, environment, event.customerId, event.feature) : {};
  const add = await amountToAdd(tx, ref, event, state.used);
  const plan = planEvent(state, usage, terms, add, reservationId !== null);
  const after = plan.after;
  const answer: UsageAnswer = plan.fits
    ? answerOf(true, after, terms, withDraws(usage, plan.draws), plan.overage, plan.credit)
    : answerOf(false, state, terms, usage);
  const json = answerJson(answer);
  if (!plan.fits) {
    await tx
      .insertInto('usage_refusals')
      .values({
        environment,
        customer_id: event.customerId,
        idempotency_key: event.idempotencyKey,
        answer: JSON.stringify(json),
      })
      .execute();
    return answer;
  }
  if (event.member !== null && add > 0) {
    await tx
      .insertInto('usage_members')
      .values({ ...refColumns(ref), period_start: terms.period.start, member: event.member })
      .execute();
  }
  await applyPlan(tx, ref, add, plan);
  await writeLedgerRows(tx, [
    {
      environment,
      customerId: event.customerId,
      feature: event.feature,
      idempotencyKey: event.idempotencyKey,
      value: event.value,
      counted: add,
      member: event.member,
      occurredAt: event.occurredAt,
      periodStart: terms.period.start,
      periodEnd: terms.period.end,
      overage: plan.overage,
      creditDraws: Object.fromEntries(plan.draws),
      answer: json,
      reservationId,
      crossings: plan.crossed.map((threshold) => ({ threshold, used: after.used, limit: terms.limit ?? 0 })),
    },
  ]);
  return answer;
}

export async function priorAnswer(tx: Tx, environment: string, customerId: string, key: string) {
  const found = await tx
    .selectFrom('usage_events')
    .select('answer')
    .where('environment', '=', environment)
    .where('customer_id', '=', customerId)
    .where('idempotency_key', '=', key)
    .unionAll((eb) =>
      eb
        .selectFrom('usage_refusals')
        .select('answer')
        .where('environment', '=', environment)
        .where('customer_id', '=', customerId)
        .where('idempotency_key', '=', key),
    )
    .executeTakeFirst();
  return found ? (found.answer as unknown as AnswerJson) : null;
}

/** What the counter grows by: the value (sum), the rise of the peak (max), 1 for a new member (unique). */
async function amountToAdd(tx: Tx, ref: CounterRef, event: UsageEvent, used: number): Promise<number> {
  const { aggregation } = event.terms;
  if (aggregation !== 'unique') return countedAmount(aggregation, event.value, used, false);
  const known = await tx
    .selectFrom('usage_members')
    .select('member')
    .where('environment', '=', ref.environment)
    .where('customer_id', '=', ref.customerId)
    .where('feature', '=', ref.feature)
    .where('period_start', '=', ref.period.start)
    .where('member', '=', event.member ?? '')
    .executeTakeFirst();
  return countedAmount(aggregation, event.value, used, known !== undefined);
}

function refColumns(ref: CounterRef) {
  return { environment: ref.environment, customer_id: ref.customerId, feature: ref.feature };
}
