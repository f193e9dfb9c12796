/**
 * Usage stream entries as ledger lines. An entry holds one `e` field per event (CONSUME_MANY
 * writes a call's events as one entry; COMMIT, one), each the event's stream record: its head
 * (the ledger columns the API knows, written by `ledgerHead`), a newline and the stored answer,
 * then, when the head and the answer do not tell the rest (an aggregation other than `sum`,
 * overage, credit drawn or a threshold crossed), five more lines: counted, overage, credit draws
 * (id,amount,...), crossed thresholds (csv), used after the event (see lua.ts).
 */
import {
  copyNumber,
  copyText,
  customerOfLine,
  type LedgerLines,
  NO_CROSSINGS,
  NO_DRAWS,
} from '../ledger/lines.ts';
import { answerText, decodeAnswer } from './wire.ts';

/** Adds every event of an entry, or throws having added none (an entry is acknowledged whole). */
export function addEntry(lines: LedgerLines, fields: string[]): void {
  const before = lines.count;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    if (fields[i] !== 'e') throw new Error(`unexpected field ${fields[i]} in a usage stream entry`);
    addRecord(lines, fields[i + 1]!);
  }
  if (lines.count === before) throw new Error('usage stream entry without events');
}

/** Adds one event's stream record as its ledger line. */
export function addRecord(lines: LedgerLines, record: string): void {
  const end = record.indexOf('\n');
  if (end < 0) throw new Error('usage stream record without an answer');
  const head = record.slice(0, end);
  const tail = record.indexOf('\n', end + 1);
  if (tail < 0) {
    // A summed event that drew no credit, went past nothing and crossed nothing: counted as sent.
    const value = head.slice(head.lastIndexOf('\t') + 1);
    lines.push(
      `${head}\t${value}\t0\t0\t${NO_DRAWS}\t${answerText(record.slice(end + 1))}\n`,
      NO_CROSSINGS,
      customerOfLine(record),
    );
    return;
  }
  const rawAnswer = record.slice(end + 1, tail);
  const [counted, overage, drawList, crossed, usedAfter] = record.slice(tail + 1).split('\n');
  const draws: Record<string, number> = {};
  let credit = 0;
  const parts = drawList ? drawList.split(',') : [];
  for (let i = 0; i + 1 < parts.length; i += 2) {
    const amount = Number(parts[i + 1]);
    draws[parts[i]!] = amount;
    credit += amount;
  }
  const answer = answerText(rawAnswer);
  const limit = decodeAnswer(rawAnswer).limit ?? 0;
  const used = Number(usedAfter);
  const crossings = (crossed ? crossed.split(',') : []).map((t) => ({ threshold: Number(t), used, limit }));
  lines.push(
    `${head}\t${copyNumber(Number(counted))}\t${copyNumber(Number(overage))}\t${copyNumber(credit)}\t${copyText(parts.length > 0 ? JSON.stringify(draws) : NO_DRAWS)}\t${answer}\n`,
    crossings,
    customerOfLine(record),
  );
}
