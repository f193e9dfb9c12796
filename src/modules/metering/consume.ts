/**
 * The check-and-consume arithmetic. It lives in the quota model (src/domain/quota.ts, rules in
 * src/domain/QUOTA.md), the one TypeScript implementation: the Postgres store runs it under a
 * per-customer lock, the Redis store runs its Lua twin (redis/lua-common.ts, redis/lua.ts) atomically, and
 * test/integration/quota-differential.test.ts holds every store to the model.
 */
export {
  answerOf,
  type CounterState,
  countedAmount,
  creditAvailable,
  crossedThresholds,
  EMPTY_COUNTER,
  type EventPlan,
  type GrantUsage,
  heldBeyondLimit,
  holdFits,
  planEvent,
  remainingOf,
  withDraws,
} from '../../domain/quota.ts';
