import type { Cluster } from './cluster.ts';
import { trace, until } from './cluster.ts';
import type { Answers } from './load.ts';

export interface LedgerCount {
  /** Accepted events not in the ledger, with when their client saw them accepted. */
  missing: Array<{ key: string; at: number }>;
  /** Idempotency keys written more than once. */
  twice: string[];
  /** Accepted events whose ledger value differs from the one sent. */
  wrongValue: string[];
  /** Ledger rows of this load that no client saw accepted (a batch in flight when a fault hit, or refused). */
  unseen: number;
}

/** The ledger rows of a load (idempotency keys starting with `keyPrefix`) against what clients saw accepted. */
export async function countLedger(
  cluster: Cluster,
  answers: Answers,
  keyPrefix: string,
): Promise<LedgerCount> {
  const rows = await cluster.query<{ idempotency_key: string; value: number; n: string }>(
    `SELECT idempotency_key, max(value)::float8 AS value, count(*)::text AS n
       FROM usage_events WHERE idempotency_key LIKE $1 GROUP BY idempotency_key`,
    [`${keyPrefix}%`],
  );
  const ledger = new Map(rows.map((r) => [r.idempotency_key, r]));
  const missing: LedgerCount['missing'] = [];
  const wrongValue: string[] = [];
  for (const [key, { value, at }] of answers.accepted) {
    const row = ledger.get(key);
    if (!row) missing.push({ key, at });
    else if (Number(row.value) !== value) wrongValue.push(key);
  }
  return {
    missing,
    twice: rows.filter((r) => r.n !== '1').map((r) => r.idempotency_key),
    wrongValue,
    unseen: rows.filter((r) => !answers.accepted.has(r.idempotency_key)).length,
  };
}

/**
 * Waits until the worker has written every accepted event of the load to the ledger (all but
 * `allowMissing` of them), then until `tessera usage verify` finds every counter equal to the ledger.
 */
export async function settled(
  cluster: Cluster,
  answers: Answers,
  keyPrefix: string,
  options: { allowMissing?: (m: { key: string; at: number }) => boolean; timeoutMs?: number } = {},
): Promise<LedgerCount> {
  let last: LedgerCount | null = null;
  const allow = options.allowMissing ?? (() => false);
  await until(
    'every accepted event in the ledger',
    async () => {
      last = await countLedger(cluster, answers, keyPrefix);
      return last.missing.every(allow);
    },
    options.timeoutMs ?? 60_000,
  ).catch((err: Error) => {
    throw new Error(
      `${err.message}: ${last?.missing.length} missing, e.g. ${JSON.stringify(last?.missing[0])}`,
    );
  });
  trace(`ledger complete (${(last as LedgerCount | null)?.missing.length ?? 0} missing)`);
  let differences: unknown[] = [];
  await until(
    '`usage verify` to find no difference',
    async () => {
      differences = await cluster.verify();
      return differences.length === 0;
    },
    30_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(differences.slice(0, 5))}`);
  });
  trace('verified');
  return countLedger(cluster, answers, keyPrefix);
}
