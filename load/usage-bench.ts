import type { BenchSettings } from './check-bench.ts';

export async function runUsageBench(_s: BenchSettings): Promise<string> {
  throw new Error('the usage benchmark arrives with metering');
}
