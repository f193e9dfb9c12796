/** The answer to one usage event: its wire form in Redis, its JSON form in the ledger and the API. */
import type { StoredPeriod, UsageAnswer } from './store.ts';

export interface AnswerJson {
  accepted: boolean;
  reason?: 'limit_exceeded';
  used: number;
  limit: number | null;
  remaining: number | null;
  resets_at: string | null;
  period_start: string;
  overage: number;
  credit_used: number;
}

const dates = new Map<string, Date>();

/** Period bounds repeat for every event of a period: one shared (never mutated) Date each. */
function dateOf(ms: string): Date {
  let date = dates.get(ms);
  if (date === undefined) {
    if (dates.size > 10_000) dates.clear();
    date = new Date(Number(ms));
    dates.set(ms, date);
  }
  return date;
}

/** Parses the pipe-joined form the Lua scripts store (see lua.ts). */
export function decodeAnswer(raw: string): UsageAnswer {
  const [accepted, used, limit, remaining, resets, start, overage, credit] = raw.split('|');
  return {
    accepted: accepted === '1',
    ...(accepted === '1' ? {} : { reason: 'limit_exceeded' as const }),
    used: Number(used),
    limit: limit ? Number(limit) : null,
    remaining: remaining ? Number(remaining) : null,
    resetsAt: resets ? dateOf(resets) : null,
    periodStart: dateOf(start ?? '0'),
    overage: Number(overage),
    creditUsed: Number(credit),
  };
}

export function encodeAnswer(a: UsageAnswer): string {
  return [
    a.accepted ? '1' : '0',
    a.used,
    a.limit ?? '',
    a.remaining ?? '',
    a.resetsAt?.getTime() ?? '',
    a.periodStart.getTime(),
    a.overage,
    a.creditUsed,
  ].join('|');
}

const isoCache = new Map<number, string>();

/** Period bounds repeat for every event of a period: format each once. */
export function isoOf(d: Date): string {
  const ms = d.getTime();
  let text = isoCache.get(ms);
  if (text === undefined) {
    if (isoCache.size > 10_000) isoCache.clear();
    text = d.toISOString();
    isoCache.set(ms, text);
  }
  return text;
}

export function answerJson(a: UsageAnswer): AnswerJson {
  return {
    accepted: a.accepted,
    ...(a.reason ? { reason: a.reason } : {}),
    used: a.used,
    limit: a.limit,
    remaining: a.remaining,
    resets_at: a.resetsAt === null ? null : isoOf(a.resetsAt),
    period_start: isoOf(a.periodStart),
    overage: a.overage,
    credit_used: a.creditUsed,
  };
}

export function answerFromJson(j: AnswerJson): UsageAnswer {
  return {
    accepted: j.accepted,
    ...(j.reason ? { reason: j.reason } : {}),
    used: j.used,
    limit: j.limit,
    remaining: j.remaining,
    resetsAt: j.resets_at === null ? null : new Date(j.resets_at),
    periodStart: new Date(j.period_start),
    overage: j.overage,
    creditUsed: j.credit_used,
  };
}

/** Fields shared by every answer in a period: where it resets and where it began. */
export function periodFields(period: StoredPeriod): Pick<UsageAnswer, 'resetsAt' | 'periodStart'> {
  return { resetsAt: period.end, periodStart: period.start };
}
