/**
 * Ledger rows as lines of COPY's text format, the form they travel in from the API to the ledger.
 *
 * The API writes the columns it knows (the event's own) as the head of each event's stream record,
 * already in this form; the consume script adds the answer, and, when the event drew credit, went
 * past its limit, crossed a threshold or was not simply summed, the figures the head cannot know
 * (see redis/lua.ts). So for most events the flusher's whole work is to put the answer's JSON after the
 * head; COPY reads the result as it is (redis/stream-records.ts reads the records).
 */
import { isoOf } from '../answer.ts';
import type { UsageEvent } from '../store.ts';
import type { Crossing, LedgerRow } from './row.ts';

/** The ledger's columns in the order of a line: the head's first, then the outcome's. */
export const LINE_COLUMNS =
  'environment, customer_id, feature, idempotency_key, member, occurred_at, period_start, period_end, reservation_id, value, counted, overage, credit, credit_draws, answer';

const NULL = '\\N';
/** The `credit_draws` of a line that drew no credit. */
export const NO_DRAWS = '{}';
const SPECIAL = /[\\\t\n\r]/;
const SPECIALS = /[\\\t\n\r]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };
const ESCAPED = /\\([\\tnr])/g;
const UNESCAPES: Record<string, string> = { '\\': '\\', t: '\t', n: '\n', r: '\r' };

/** A text value as COPY reads it back: backslash, tab, newline and carriage return escaped. */
export function copyText(value: string): string {
  return SPECIAL.test(value) ? value.replace(SPECIALS, (c) => ESCAPES[c]!) : value;
}

function nullable(value: string | null): string {
  return value === null ? NULL : copyText(value);
}

function untext(value: string): string {
  return value.includes('\\') ? value.replace(ESCAPED, (_, c: string) => UNESCAPES[c]!) : value;
}

function unnullable(value: string): string | null {
  return value === NULL ? null : untext(value);
}

/** JavaScript's shortest round-trip digits, which PostgreSQL's numeric reads exactly. */
export function copyNumber(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`not a finite number: ${value}`);
  return String(value);
}

/**
 * An event's head: its own columns, up to and including `value`, tab-separated (no line end).
 * Newline-free, so a stream record can put lines after it.
 */
export function ledgerHead(environment: string, event: UsageEvent, reservationId: string | null): string {
  const p = event.terms.period;
  return `${copyText(environment)}\t${copyText(event.customerId)}\t${copyText(event.feature)}\t${copyText(event.idempotencyKey)}\t${nullable(event.member)}\t${event.occurredAt.toISOString()}\t${isoOf(p.start)}\t${p.end === null ? NULL : isoOf(p.end)}\t${nullable(reservationId)}\t${copyNumber(event.value)}`;
}

/** A threshold crossing found in a record, with the line it belongs to. */
export interface LineCrossing {
  line: number;
  crossings: Crossing[];
}

/**
 * Ledger lines made from stream records, with the threshold crossings they announce. `rows()`
 * reads the lines back as rows, for the insert (the embedded database, or a batch COPY refused).
 */
export class LedgerLines {
  count = 0;
  readonly crossed: LineCrossing[] = [];
  private readonly lines: string[] = [];
  /** Each line's environment and customer, as written (the order of `text`). */
  private readonly customers: string[] = [];

  /**
   * Adds one line (with its end) and the crossings its event announces. `customer` is the line's
   * start up to its second tab, when the caller has it at hand.
   */
  push(line: string, crossings: Crossing[] = NO_CROSSINGS, customer = customerOfLine(line)): void {
    if (crossings.length > 0) this.crossed.push({ line: this.count, crossings });
    // Made flat now, while its pieces are fresh in the cache: `text` joins the lines in another
    // order, and a line still in pieces cost that join 2.4-2.7 µs instead of 0.45 (each piece
    // fetched from wherever it was made).
    line.charCodeAt(0);
    this.lines.push(line);
    this.customers.push(customer);
    this.count += 1;
  }

  /** Adds every line of `other`, after those here. */
  append(other: LedgerLines): void {
    for (const c of other.crossed) this.crossed.push({ line: c.line + this.count, crossings: c.crossings });
    for (const line of other.lines) this.lines.push(line);
    for (const customer of other.customers) this.customers.push(customer);
    this.count += other.count;
  }

  /**
   * Every line, for COPY, ordered by environment and customer: the ledger's unique index is
   * ordered that way, so PostgreSQL then visits its pages in order instead of at random (in
   * batches of 20,000 on a ledger of a million rows: 13.2 instead of 15.5 µs a row). The order is stable: a
   * customer's lines keep their order, and so their ids do (a rebuild reads distinct members in
   * that order).
   */
  text(): string {
    const byCustomer = new Map<string, number[]>();
    for (let i = 0; i < this.count; i++) {
      const customer = this.customers[i]!;
      const group = byCustomer.get(customer);
      if (group) group.push(i);
      else byCustomer.set(customer, [i]);
    }
    // The default sort compares strings natively: about twice as fast as a comparator.
    const ordered: string[] = [];
    for (const customer of [...byCustomer.keys()].sort())
      for (const i of byCustomer.get(customer)!) ordered.push(this.lines[i]!);
    return ordered.join('');
  }

  /** The lines' distinct environment-and-customer starts, as written (see `customerOfKey`). */
  customerKeys(): string[] {
    return [...new Set(this.customers)];
  }

  rows(): LedgerRow[] {
    const crossings = new Map(this.crossed.map((c) => [c.line, c.crossings]));
    return this.lines.map((line, i) => rowOfLine(line, crossings.get(i) ?? NO_CROSSINGS));
  }

  /** The rows of the lines that announce a crossing. */
  crossingRows(): LedgerRow[] {
    return this.crossed.map((c) => rowOfLine(this.lines[c.line]!, c.crossings));
  }

  static ofRows(rows: LedgerRow[]): LedgerLines {
    const lines = new LedgerLines();
    for (const row of rows) lines.push(lineOfRow(row), row.crossings);
    return lines;
  }
}

export const NO_CROSSINGS: Crossing[] = [];

/** A line's (or head's) environment and customer: its start up to the second tab. */
export function customerOfLine(line: string): string {
  return line.slice(0, line.indexOf('\t', line.indexOf('\t') + 1));
}

/** A key of `customerKeys` as its environment and customer. */
export function customerOfKey(key: string): [environment: string, customerId: string] {
  const tab = key.indexOf('\t');
  return [untext(key.slice(0, tab)), untext(key.slice(tab + 1))];
}

/** A row as a line (with its end). */
export function lineOfRow(r: LedgerRow): string {
  let credit = 0;
  let draws = NO_DRAWS;
  for (const id in r.creditDraws) {
    if (draws === NO_DRAWS) draws = JSON.stringify(r.creditDraws);
    credit += r.creditDraws[id]!;
  }
  return `${copyText(r.environment)}\t${copyText(r.customerId)}\t${copyText(r.feature)}\t${copyText(r.idempotencyKey)}\t${nullable(r.member)}\t${r.occurredAt.toISOString()}\t${isoOf(r.periodStart)}\t${r.periodEnd === null ? NULL : isoOf(r.periodEnd)}\t${nullable(r.reservationId)}\t${copyNumber(r.value)}\t${copyNumber(r.counted)}\t${copyNumber(r.overage)}\t${copyNumber(credit)}\t${copyText(draws)}\t${copyText(JSON.stringify(r.answer))}\n`;
}

/** A line read back as a row. */
export function rowOfLine(line: string, crossings: Crossing[] = NO_CROSSINGS): LedgerRow {
  const f = line.slice(0, line.endsWith('\n') ? -1 : undefined).split('\t');
  if (f.length !== 15) throw new Error(`a ledger line has ${f.length} columns, not 15`);
  const end = unnullable(f[7]!);
  return {
    environment: untext(f[0]!),
    customerId: untext(f[1]!),
    feature: untext(f[2]!),
    idempotencyKey: untext(f[3]!),
    member: unnullable(f[4]!),
    occurredAt: new Date(f[5]!),
    periodStart: new Date(f[6]!),
    periodEnd: end === null ? null : new Date(end),
    reservationId: unnullable(f[8]!),
    value: Number(f[9]),
    counted: Number(f[10]),
    overage: Number(f[11]),
    creditDraws: JSON.parse(untext(f[13]!)) as Record<string, number>,
    answer: JSON.parse(untext(f[14]!)),
    crossings,
  };
}
