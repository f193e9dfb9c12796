/**
 * The stored form of an answer, as the Lua scripts write it (see lua.ts): one pipe-joined string,
 *   accepted | used | limit ('' = none) | remaining ('' = none) | resets_at ms ('' = none) |
 *   period start ms | overage | credit
 * and its JSON text, made straight from it for the ledger's `answer` column.
 */
import { isoOfMs } from '../answer.ts';
import type { UsageAnswer } from '../store.ts';

/** Parses the stored form. */
export function decodeAnswer(raw: string): UsageAnswer {
  const [accepted, used, limit, remaining, resets, start, overage, credit] = raw.split('|');
  return {
    accepted: accepted === '1',
    ...(accepted === '1' ? {} : { reason: 'limit_exceeded' as const }),
    used: Number(used),
    limit: limit ? Number(limit) : null,
    remaining: remaining ? Number(remaining) : null,
    resetsAt: resets ? new Date(Number(resets)) : null,
    periodStart: new Date(Number(start ?? '0')),
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

/**
 * The JSON of a stored answer (the scripts' pipe-joined form), made straight from its text: the
 * same text as `JSON.stringify(answerJson(decodeAnswer(raw)))` (answer.ts).
 */
export function answerText(raw: string): string {
  const [accepted, used, limit, remaining, resets, start, overage, credit] = raw.split('|');
  const ok = accepted === '1';
  return `{"accepted":${ok}${ok ? '' : ',"reason":"limit_exceeded"'},"used":${+used!},"limit":${limit ? +limit : 'null'},"remaining":${remaining ? +remaining : 'null'},"resets_at":${resets ? `"${isoOfMs(+resets)}"` : 'null'},"period_start":"${isoOfMs(+(start || '0'))}","overage":${+overage!},"credit_used":${+credit!}}`;
}
