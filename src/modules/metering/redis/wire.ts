/**
 * The stored form of an answer, as the Lua scripts write it (see lua.ts): one pipe-joined string,
 *   accepted | used | limit ('' = none) | remaining ('' = none) | resets_at ms ('' = none) |
 *   period start ms | overage | credit
 * and its JSON text, made straight from it for the ledger's `answer` column.
 */
import type { UsageAnswer } from '../store.ts';

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

/** Parses the stored form. */
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

const isoOfMs = new Map<string, string>();

// The last two looked up: an answer's period start and end.
let lastMs: [string, string] = ['', ''];
let lastIsoText: [string, string] = ['', ''];

/** Period bounds repeat for every event of a period: each is formatted once. */
function isoText(ms: string): string {
  if (ms === lastMs[0]) return lastIsoText[0];
  if (ms === lastMs[1]) return lastIsoText[1];
  let iso = isoOfMs.get(ms);
  if (iso === undefined) {
    if (isoOfMs.size > 10_000) isoOfMs.clear();
    iso = new Date(Number(ms)).toISOString();
    isoOfMs.set(ms, iso);
  }
  lastMs = [ms, lastMs[0]];
  lastIsoText = [iso, lastIsoText[0]];
  return iso;
}

/**
 * The JSON of a stored answer (the scripts' pipe-joined form), made straight from its text: the
 * same text as `JSON.stringify(answerJson(decodeAnswer(raw)))` (answer.ts).
 */
export function answerText(raw: string): string {
  const [accepted, used, limit, remaining, resets, start, overage, credit] = raw.split('|');
  const ok = accepted === '1';
  return `{"accepted":${ok}${ok ? '' : ',"reason":"limit_exceeded"'},"used":${+used!},"limit":${limit ? +limit : 'null'},"remaining":${remaining ? +remaining : 'null'},"resets_at":${resets ? `"${isoText(resets)}"` : 'null'},"period_start":"${isoText(start || '0')}","overage":${+overage!},"credit_used":${+credit!}}`;
}
