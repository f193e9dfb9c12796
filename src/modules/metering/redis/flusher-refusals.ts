/**
 * The flusher's way past records the ledger refuses. Only after a read's batch failed for a reason
 * of its rows (see `refusedByLedger`), or named a customer the database does not have, does the
 * flusher come here: the read is taken apart event by event, the strangers' events are set aside,
 * and the rest is written in halves, each half that fails split again, until every event is either
 * in the ledger or alone and refused. With one bad event in n that is about 2n rows written and
 * 2·log2(n) statements. Every write skips rows already there, so a half written before a crash is
 * written once.
 */
import type { Db } from '../../../platform/db.ts';
import type { LedgerCopier } from '../ledger/copy.ts';
import { type DeadLetter, refusedByLedger } from '../ledger/dead-letters.ts';
import { appendLines } from '../ledger/ledger.ts';
import { customerOfKey, LedgerLines } from '../ledger/lines.ts';
import { addRecord } from './stream-records.ts';

/** A stream entry the flusher read whole (every field an `e`, every record readable). */
export interface ReadEntry {
  stream: string;
  id: string;
  fields: string[];
}

interface EventOfEntry {
  stream: string;
  entryId: string;
  position: number;
  record: string;
  lines: LedgerLines;
  customerKey: string;
}

/**
 * Writes what the ledger takes of `entries`, and answers how many events that was and the dead
 * letters for the rest (not yet written). `strangers` are customer keys (`LedgerLines.customerKeys`)
 * the database does not have. An error that is not the rows' (the database went away) is thrown:
 * the entries then stay pending, and nothing is set aside.
 */
export async function writeSeparating(
  db: Db,
  copier: LedgerCopier | null,
  entries: ReadEntry[],
  strangers: ReadonlySet<string>,
): Promise<{ moved: number; letters: DeadLetter[] }> {
  const letters: DeadLetter[] = [];
  const events: EventOfEntry[] = [];
  for (const { stream, id, fields } of entries) {
    for (let i = 1; i < fields.length; i += 2) {
      const record = fields[i]!;
      const lines = new LedgerLines();
      addRecord(lines, record);
      const event = {
        stream,
        entryId: id,
        position: (i - 1) / 2,
        record,
        lines,
        customerKey: lines.customerKeys()[0]!,
      };
      if (strangers.has(event.customerKey)) letters.push(letterOf(event, 'unknown_customer', null));
      else events.push(event);
    }
  }
  const moved = await writeHalves(db, copier, events, letters);
  return { moved, letters };
}

async function writeHalves(
  db: Db,
  copier: LedgerCopier | null,
  events: EventOfEntry[],
  letters: DeadLetter[],
): Promise<number> {
  if (events.length === 0) return 0;
  const lines = new LedgerLines();
  for (const event of events) lines.append(event.lines);
  try {
    await appendLines(db, lines, copier);
    return events.length;
  } catch (err) {
    if (!refusedByLedger(err)) throw err;
    if (events.length === 1) {
      letters.push(letterOf(events[0]!, 'ledger_refused', err instanceof Error ? err.message : String(err)));
      return 0;
    }
    const half = Math.ceil(events.length / 2);
    return (
      (await writeHalves(db, copier, events.slice(0, half), letters)) +
      (await writeHalves(db, copier, events.slice(half), letters))
    );
  }
}

function letterOf(event: EventOfEntry, reason: DeadLetter['reason'], detail: string | null): DeadLetter {
  const [environment, customerId] = customerOfKey(event.customerKey);
  return {
    stream: event.stream,
    entryId: event.entryId,
    position: event.position,
    environment,
    customerId,
    record: event.record,
    reason,
    detail,
  };
}
