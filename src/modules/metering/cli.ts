/** `tessera usage rebuild | verify`: operator verbs over the ledger and the Redis counters. */
import type { Runtime } from '../../runtime.ts';
import { RedisUsageStore } from './redis-store.ts';
import { compareWithLedger } from './verify.ts';

export async function runUsageCommand(runtime: Runtime, sub: string | undefined): Promise<number> {
  const { store } = runtime.metering;
  if (!(store instanceof RedisUsageStore)) {
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
      const { checked, mismatches } = await compareWithLedger(store, runtime.deps.clock.now());
      for (const m of mismatches) process.stdout.write(`${JSON.stringify(m)}\n`);
      process.stdout.write(`${checked} counters checked, ${mismatches.length} differ from the ledger\n`);
      return mismatches.length === 0 ? 0 : 1;
    }
    default:
      process.stderr.write('usage rebuild | usage verify\n');
      return 2;
  }
}
