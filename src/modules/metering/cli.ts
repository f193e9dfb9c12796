/** `tessera usage rebuild | verify | dead-letters`: operator verbs over the ledger and the Redis counters. */
import { parseArgs } from 'node:util';
import type { Runtime } from '../../runtime.ts';
import { deleteDeadLetter, findDeadLetter, listDeadLetters } from './ledger/dead-letters.ts';

const HELP = 'usage rebuild | usage verify | usage dead-letters [--env ENV] [replay ID | discard ID]\n';

export async function runUsageCommand(
  runtime: Runtime,
  sub: string | undefined,
  args: string[] = [],
): Promise<number> {
  const { store } = runtime.metering;
  if (store.kind === 'postgres') {
    process.stdout.write(
      'counters live in Postgres (no REDIS_URL): the ledger is written with them, nothing to do\n',
    );
    return 0;
  }
  switch (sub) {
    case 'rebuild': {
      const report = await runtime.metering.rebuild();
      process.stdout.write(`rebuilt from the ledger: ${JSON.stringify(report)}\n`);
      return 0;
    }
    case 'verify': {
      await runtime.metering.flush({ claimIdleMs: 60_000 });
      const report = await store.verify(runtime.deps.clock.now());
      const { checked, mismatches } = report ?? { checked: 0, mismatches: [] };
      for (const m of mismatches) process.stdout.write(`${JSON.stringify(m)}\n`);
      process.stdout.write(`${checked} counters checked, ${mismatches.length} differ from the ledger\n`);
      return mismatches.length === 0 ? 0 : 1;
    }
    case 'dead-letters':
      return deadLetters(runtime, args);
    default:
      process.stderr.write(HELP);
      return 2;
  }
}

/**
 * Lists the usage records the flusher set aside (one JSON line each, `record` as read from the
 * stream), or acts on one: `replay` appends its record to the usage stream again and flushes (for
 * a record whose cause is gone, e.g. its customer now exists here), `discard` deletes it.
 */
async function deadLetters(runtime: Runtime, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { env: { type: 'string' }, limit: { type: 'string', default: '1000' } },
  });
  const db = runtime.deps.db;
  const [action, id] = positionals;
  if (action === undefined) {
    const letters = await listDeadLetters(db, {
      ...(values.env !== undefined ? { environment: values.env } : {}),
      limit: Number(values.limit) || 1000,
    });
    for (const l of letters) process.stdout.write(`${JSON.stringify(l)}\n`);
    process.stdout.write(`${letters.length} dead letters\n`);
    return 0;
  }
  if ((action !== 'replay' && action !== 'discard') || id === undefined) {
    process.stderr.write(HELP);
    return 2;
  }
  const letter = await findDeadLetter(db, id);
  if (!letter || (values.env !== undefined && letter.environment !== values.env)) {
    process.stderr.write(`no dead letter ${id}\n`);
    return 1;
  }
  if (action === 'discard') {
    await deleteDeadLetter(db, id);
    process.stdout.write(`discarded dead letter ${id}\n`);
    return 0;
  }
  // Into the stream the API would append this customer's events to now; deleted only once there
  // (a crash in between leaves both, and replaying twice writes the event once).
  await runtime.metering.store.requeue(letter.environment, letter.customerId, letter.record);
  await deleteDeadLetter(db, id);
  const written = await runtime.metering.flush();
  const again = await listDeadLetters(db, { environment: letter.environment });
  const refused = again.filter((l) => l.record === letter.record);
  process.stdout.write(
    refused.length > 0
      ? `replayed dead letter ${id}: refused again (${refused.map((l) => `${l.id} ${l.reason}`).join(', ')})\n`
      : `replayed dead letter ${id}: ${written} event(s) written to the ledger\n`,
  );
  return refused.length > 0 ? 1 : 0;
}
