import { describe, expect, it } from 'vitest';
import {
  formatTokensReport,
  LOOP_NAMES,
  type LoopName,
  runTokenLoops,
  tokenFixture,
  tokenLoops,
} from '../../load/tokens-bench.ts';

/** The tokens benchmark's loops run briefly and report sane numbers (no timing assertions). */

describe('tokens benchmark', () => {
  it('each loop decides correctly on the fixture tokens', async () => {
    const fixture = await tokenFixture(3);
    const loops = await tokenLoops(fixture);
    for (let i = 0; i < 6; i++) {
      expect(await loops.local(i)).toBe(true);
      expect(loops.localKept(i)).toBe(true);
      expect(await loops.edge(i)).toBe(true);
      const bare = (await loops.bare(i)) as { payload: { sub: string; ent: Record<string, unknown> } };
      expect(bare.payload.sub).toBe(`cust-${i % 3}`);
      expect(Object.keys(bare.payload.ent)).toHaveLength(36);
    }
  });

  it('runs every loop in alternation and reports ops/s, the ratio and the target', async () => {
    const result = await runTokenLoops({ rounds: 2, msPerLoop: 100, tokens: 20 });
    for (const name of Object.keys(LOOP_NAMES) as LoopName[]) {
      expect(result.perRound[name]).toHaveLength(2);
      expect(result.opsPerSecond[name]).toBeGreaterThan(0);
      expect(Number.isFinite(result.opsPerSecond[name])).toBe(true);
    }
    expect(result.localOverBare).toBeGreaterThan(0);
    expect(result.targetMet).toBe(result.localOverBare <= 2);
    const report = formatTokensReport(result);
    expect(report).toContain('## Tokens');
    expect(report).toContain('Local mode / bare verify cost');
    for (const label of Object.values(LOOP_NAMES)) expect(report).toContain(label);
  });
});
