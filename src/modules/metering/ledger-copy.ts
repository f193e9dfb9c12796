/**
 * Ledger rows through `COPY usage_events FROM STDIN`, PostgreSQL's cheapest way in: about half the
 * server's CPU per row of the `INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING` the
 * flusher used alone before, and a fraction of the client's (docs/benchmarks.md, 2026-12-07).
 * COPY has no ON CONFLICT: a batch holding an event already in the ledger (a stream entry
 * delivered again after a crash) fails whole on the unique index and is rolled back; the caller
 * then writes it the old way, which skips what is there. Real PostgreSQL only (the embedded
 * database keeps the insert).
 */
import { finished } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { isoOf } from './answer.ts';
import type { LedgerRow } from './ledger.ts';

const COPY = `COPY usage_events (environment, customer_id, feature, idempotency_key, value, counted, member,
  occurred_at, period_start, period_end, overage, credit, credit_draws, answer, reservation_id) FROM STDIN`;

/** PostgreSQL's unique_violation. */
const UNIQUE_VIOLATION = '23505';

export class LedgerCopier {
  constructor(private readonly pool: pg.Pool) {}

  /**
   * Writes every row in one transaction and answers true; answers false, having written nothing,
   * when one of them is in the ledger already.
   */
  async copy(rows: LedgerRow[]): Promise<boolean> {
    // Made before the COPY starts: a row that cannot be written must not leave a COPY open.
    const text = copyText(rows);
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const stream = client.query(copyFrom(COPY));
      stream.end(text);
      await finished(stream);
      await client.query('COMMIT');
      return true;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollback: Error) => {
        broken = rollback;
      });
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) return false;
      throw err;
    } finally {
      // A connection that could not even roll back is not given back to the pool.
      client.release(broken);
    }
  }
}

/** Rows in COPY's text format: tab-separated, one a line, `\N` for NULL. */
function copyText(rows: LedgerRow[]): string {
  let out = '';
  // The events of one script call share their instant: format it once for them all.
  let lastMs = Number.NaN;
  let lastIso = '';
  for (const r of rows) {
    let credit = 0;
    let draws = NO_DRAWS;
    for (const id in r.creditDraws) {
      if (draws === NO_DRAWS) draws = JSON.stringify(r.creditDraws);
      credit += r.creditDraws[id]!;
    }
    const ms = r.occurredAt.getTime();
    if (ms !== lastMs) {
      lastMs = ms;
      lastIso = r.occurredAt.toISOString();
    }
    out += `${text(r.environment)}\t${text(r.customerId)}\t${text(r.feature)}\t${text(r.idempotencyKey)}\t${number(r.value)}\t${number(r.counted)}\t${nullable(r.member)}\t${lastIso}\t${isoOf(r.periodStart)}\t${r.periodEnd === null ? NULL : isoOf(r.periodEnd)}\t${number(r.overage)}\t${number(credit)}\t${text(draws)}\t${text(JSON.stringify(r.answer))}\t${nullable(r.reservationId)}\n`;
  }
  return out;
}

const NULL = '\\N';
const NO_DRAWS = '{}';
const SPECIAL = /[\\\t\n\r]/;
const SPECIALS = /[\\\t\n\r]/g;
const ESCAPES: Record<string, string> = { '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' };

/** A text value as COPY reads it back: backslash, tab, newline and carriage return escaped. */
function text(value: string): string {
  return SPECIAL.test(value) ? value.replace(SPECIALS, (c) => ESCAPES[c]!) : value;
}

function nullable(value: string | null): string {
  return value === null ? NULL : text(value);
}

/** JavaScript's shortest round-trip digits, which PostgreSQL's numeric reads exactly. */
function number(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`not a finite number: ${value}`);
  return String(value);
}
