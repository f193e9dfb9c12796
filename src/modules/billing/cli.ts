/** `tessera stripe reconcile --env test|live [--dry-run]`: one reconciliation run, its report as JSON. */
import { parseArgs } from 'node:util';
import { systemContext } from '../../platform/context.ts';
import type { Runtime } from '../../runtime.ts';
import { executeReconciliation } from './reconcile.ts';

const USAGE = 'stripe reconcile --env test|live [--dry-run]\n';

export async function runStripeCommand(
  runtime: Runtime,
  args: string[],
  write: (text: string) => void = (text) => process.stdout.write(text),
  writeError: (text: string) => void = (text) => process.stderr.write(text),
): Promise<number> {
  const [sub, ...rest] = args;
  let values: { env?: string; 'dry-run'?: boolean };
  try {
    values = parseArgs({
      args: rest,
      options: { env: { type: 'string' }, 'dry-run': { type: 'boolean' } },
    }).values;
  } catch {
    writeError(USAGE);
    return 2;
  }
  if (sub !== 'reconcile' || !values.env) {
    writeError(USAGE);
    return 2;
  }
  const ctx = systemContext(runtime.deps, values.env, {
    type: 'system',
    id: null,
    name: 'tessera stripe reconcile',
  });
  let outcome: Awaited<ReturnType<typeof executeReconciliation>>;
  try {
    outcome = await executeReconciliation(ctx, { dry_run: values['dry-run'] ?? false });
  } catch (err) {
    // Not connected (no secret key) or no such environment: no run was started.
    writeError(`reconciliation failed: ${(err as Error)?.message ?? String(err)}\n`);
    return 1;
  }
  const { view, failure } = outcome;
  write(`${JSON.stringify(view, null, 2)}\n`);
  if (!failure) return 0;
  writeError(`reconciliation failed: ${view.error}\n`);
  return 1;
}
