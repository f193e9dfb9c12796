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
import { LINE_COLUMNS } from './lines.ts';

const COPY = `COPY usage_events (${LINE_COLUMNS}) FROM STDIN`;

/** PostgreSQL's unique_violation. */
const UNIQUE_VIOLATION = '23505';

export class LedgerCopier {
  constructor(private readonly pool: pg.Pool) {}

  /**
   * Writes every line (see lines.ts; made before the COPY starts, so a row that cannot be
   * written never leaves a COPY open) in one transaction and answers true; answers false, having
   * written nothing, when one of them is in the ledger already.
   */
  async copy(text: string): Promise<boolean> {
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
