/** A ledger row as the code sees it (`usage_events`), and the threshold crossings it announces. */
import type { AnswerJson } from '../answer.ts';

export interface Crossing {
  threshold: number;
  used: number;
  limit: number;
}

export interface LedgerRow {
  environment: string;
  customerId: string;
  feature: string;
  idempotencyKey: string;
  value: number;
  counted: number;
  member: string | null;
  occurredAt: Date;
  periodStart: Date;
  periodEnd: Date | null;
  overage: number;
  creditDraws: Record<string, number>;
  answer: AnswerJson;
  reservationId: string | null;
  crossings: Crossing[];
}
