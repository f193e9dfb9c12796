import { describe, expect, it } from 'vitest';
import { TickBatcher } from '../../src/modules/metering/redis-scripts.ts';

describe('TickBatcher', () => {
  it('runs the calls made in one turn together, in order, and each caller gets its answer', async () => {
    const runs: number[][] = [];
    const batcher = new TickBatcher<number, number>(async (inputs) => {
      runs.push(inputs);
      return inputs.map((n) => n * 10);
    }, 100);
    const answers = await Promise.all([1, 2, 3].map((n) => batcher.call(n)));
    expect(answers).toEqual([10, 20, 30]);
    expect(runs).toEqual([[1, 2, 3]]);
    expect(await batcher.call(4)).toBe(40);
    expect(runs).toEqual([[1, 2, 3], [4]]);
  });

  it('runs at once when max calls are waiting', async () => {
    const runs: number[][] = [];
    const batcher = new TickBatcher<number, number>(async (inputs) => {
      runs.push(inputs);
      return inputs;
    }, 2);
    const answers = await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.call(n)));
    expect(answers).toEqual([1, 2, 3, 4, 5]);
    expect(runs).toEqual([[1, 2], [3, 4], [5]]);
  });

  it('fails every call of a run that fails, and later runs go on', async () => {
    let fail = true;
    const batcher = new TickBatcher<number, number>(async (inputs) => {
      if (fail) throw new Error('down');
      return inputs;
    }, 100);
    const settled = await Promise.allSettled([1, 2].map((n) => batcher.call(n)));
    expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected']);
    fail = false;
    expect(await batcher.call(3)).toBe(3);
  });
});
