/**
 * One interface, two stores: Redis (hot counters, atomic Lua check-and-consume, a stream flushed
 * to the Postgres ledger) and Postgres (a per-customer lock and conditional writes, ledger row in
 * the same transaction). Both pass the same contract suite and both serve decisions (`read`).
 */
import type { QuotaAnswer } from '../../domain/quota.ts';
import type { Aggregation, OverageMode } from '../../domain/types.ts';
import type { UsageSource } from '../entitlements/engine.ts';

/** A usage period as stored: `end` null for features that never reset (then `start` is the epoch). */
export interface StoredPeriod {
  start: Date;
  end: Date | null;
}

export interface CreditTerm {
  id: string;
  amount: number;
}

/** What the decision engine says about one metered feature for one customer at one instant. */
export interface UsageTerms {
  aggregation: Aggregation;
  /** null: unlimited. */
  limit: number | null;
  overage: OverageMode;
  /** Percent thresholds to announce when crossed (sorted, 100 included when there is a limit). */
  thresholds: number[];
  /** Credit grants effective now, in burn-down order; empty unless the aggregation is `sum`. */
  grants: CreditTerm[];
  period: StoredPeriod;
}

export interface UsageEvent {
  customerId: string;
  feature: string;
  idempotencyKey: string;
  /** Non-negative integer; for `unique` features always 1. */
  value: number;
  /** The distinct thing counted by `unique` features; null otherwise. */
  member: string | null;
  occurredAt: Date;
  terms: UsageTerms;
}

/** The answer to a usage event, a hold or a commit: the quota model's (src/domain/quota.ts). */
export type UsageAnswer = QuotaAnswer;

export type ReservationStatus = 'held' | 'committed' | 'released' | 'expired';

export interface Reservation {
  id: string;
  customerId: string;
  feature: string;
  amount: number;
  committedAmount: number | null;
  status: ReservationStatus;
  period: StoredPeriod;
  expiresAt: Date;
  createdAt: Date;
  settledAt: Date | null;
}

export interface HoldRequest {
  id: string;
  customerId: string;
  feature: string;
  amount: number;
  expiresAt: Date;
  terms: UsageTerms;
}

export type HoldAnswer =
  | { held: true; reservation: Reservation; answer: UsageAnswer }
  | { held: false; answer: UsageAnswer };

export type CommitAnswer =
  | { committed: true; reservation: Reservation; answer: UsageAnswer }
  | { committed: false; reservation: Reservation };

export interface FlushOptions {
  /** Take over entries another (crashed) flusher read but never acknowledged after this idle time. */
  claimIdleMs?: number;
  /** Return after about this long even if events keep arriving. */
  budgetMs?: number;
  /**
   * Read every stream (default), or only those marked as written to, plus every stream once in a
   * while: what the scheduled flush does, so it costs little when most streams are empty.
   */
  full?: boolean;
}

/** What a rebuild of the counters from the ledger restored. */
export interface RebuildReport {
  counters: number;
  answers: number;
  holds: number;
}

/** A counter that differs from the ledger's sums. */
export interface Mismatch {
  key: string;
  ledger: { used: number; overage: number; credit: number };
  redis: { used: number; overage: number; credit: number };
}

export interface VerifyReport {
  checked: number;
  mismatches: Mismatch[];
}

export interface UsageStore extends UsageSource {
  readonly kind: 'redis' | 'postgres';
  /** Readies the store before it serves (Redis: loads the scripts, starts the counter cache). */
  start(): Promise<void>;
  /** Lets go of what `start` set up. */
  stop(): void;
  /**
   * Recomputes the counters from the ledger, after flushing what is not in it yet; null where the
   * counters are written with the ledger (Postgres: nothing to rebuild).
   */
  rebuild(now: Date): Promise<RebuildReport | null>;
  /** Compares the counters with the ledger's sums; null where they are written together (Postgres). */
  verify(now: Date, environment?: string): Promise<VerifyReport | null>;
  /**
   * Puts an event's stream record back on its way to the ledger (a dead letter replayed). Only a
   * store with a stream sets records aside; Postgres refuses.
   */
  requeue(environment: string, customerId: string, record: string): Promise<void>;
  /** Check-and-consume, in order; each answer is final (a repeated idempotency key replays it). */
  record(environment: string, events: UsageEvent[], now: Date): Promise<UsageAnswer[]>;
  hold(environment: string, request: HoldRequest, now: Date): Promise<HoldAnswer>;
  /** Turns a live hold into usage of `amount` (at most the held amount) and frees the rest. */
  commit(
    environment: string,
    reservation: Reservation,
    amount: number,
    terms: UsageTerms,
    now: Date,
  ): Promise<CommitAnswer>;
  release(environment: string, reservation: Reservation, now: Date): Promise<Reservation>;
  findReservation(environment: string, id: string): Promise<Reservation | null>;
  /** Releases holds whose time ran out; returns how many. */
  sweepExpired(now: Date): Promise<number>;
  /** Moves accepted events not yet in the ledger into it; returns how many (Postgres: always 0). */
  flush(options?: FlushOptions): Promise<number>;
}

/** A domain period as stored: `reset: none` spans all time and is keyed at the epoch. */
export function storedPeriod(period: { start: Date; end: Date }): StoredPeriod {
  return period.end.getTime() >= 8e15 ? { start: new Date(0), end: null } : period;
}

/** Far enough back to mean "always" and still a valid timestamptz. */
export const FOREVER_START = new Date(0);
