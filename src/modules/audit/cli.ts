/** `tessera audit checkpoint | verify [--env test|live]`: operator verbs over the audit chains. */
import { parseArgs } from 'node:util';
import type { Runtime } from '../../runtime.ts';
import { verifyAuditTrail, writeCheckpoint } from './checkpoints.ts';

const USAGE = 'audit checkpoint [--env ENV] | audit verify [--env ENV]\n';

export async function runAuditCommand(
  runtime: Runtime,
  args: string[],
  write: (text: string) => void = (text) => process.stdout.write(text),
): Promise<number> {
  const [sub, ...rest] = args;
  let env: string | undefined;
  try {
    env = parseArgs({ args: rest, options: { env: { type: 'string' } } }).values.env;
  } catch {
    process.stderr.write(USAGE);
    return 2;
  }
  const { deps } = runtime;
  const environments = env
    ? [env]
    : (await deps.db.selectFrom('audit_heads').select('environment').orderBy('environment').execute()).map(
        (h) => h.environment,
      );
  switch (sub) {
    case 'checkpoint': {
      for (const environment of environments) {
        const checkpoint = await writeCheckpoint(deps, environment, deps.clock.now());
        write(`${JSON.stringify(checkpoint ?? { environment, skipped: 'no audit events to sign' })}\n`);
      }
      return 0;
    }
    case 'verify': {
      let ok = true;
      for (const environment of environments) {
        const result = await verifyAuditTrail(deps.db, deps.secrets, environment);
        ok &&= result.ok;
        write(`${JSON.stringify({ environment, ...result })}\n`);
      }
      return ok ? 0 : 1;
    }
    default:
      process.stderr.write(USAGE);
      return 2;
  }
}
