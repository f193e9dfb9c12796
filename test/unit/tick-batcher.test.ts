import { describe, expect, it } from 'vitest';
import { TickBatcher } from '../../src/modules/metering/redis/scripts.ts';

/** A batcher of `max` calls a run, one partial run in flight, whose runs wait for `release`. */
function gated(max: number, holdFirstOnly: boolean) {
  const runs: number[][] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => {
    release = r;
  });
  const batcher = new TickBatcher<number, number>(
    async (inputs) => {
      runs.push(inputs);
      if (!holdFirstOnly || runs.length === 1) await gate;
      return inputs;
    },
    max,
    1,
  );
  return { runs, batcher, release };
}

const nextTurn = () => new Promise((r) => setImmediate(r));

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

  it('takes several calls with one promise, in runs of at most max, packed with single calls in order', async () => {
    const runs: number[][] = [];
    const batcher = new TickBatcher<number, number>(async (inputs) => {
      runs.push(inputs);
      return inputs.map((n) => n * 10);
    }, 3);
    expect(await batcher.callAll([1, 2, 3, 4, 5, 6, 7])).toEqual([10, 20, 30, 40, 50, 60, 70]);
    expect(runs).toEqual([[1, 2, 3], [4, 5, 6], [7]]);
    runs.length = 0;
    const answers = await Promise.all([batcher.call(1), batcher.callAll([2, 3]), batcher.call(4)]);
    expect(answers).toEqual([10, [20, 30], 40]);
    expect(runs).toEqual([[1, 2, 3], [4]]);
    expect(await batcher.callAll([])).toEqual([]);
    const failing = new TickBatcher<number, number>(async () => {
      throw new Error('down');
    }, 3);
    await expect(failing.callAll([1, 2])).rejects.toThrow('down');
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

  it('with maxInFlight, calls made while a run is under way leave together when it returns', async () => {
    const { runs, batcher, release } = gated(3, true);
    const first = batcher.call(1);
    await nextTurn();
    // Two more turns' worth of calls while the first run waits: neither starts a run of its own.
    const later: Promise<number>[] = [];
    for (const n of [2, 3]) {
      later.push(batcher.call(n));
      await nextTurn();
    }
    expect(runs).toEqual([[1]]);
    release();
    expect(await Promise.all([first, ...later])).toEqual([1, 2, 3]);
    // Then together, at most `max` a run.
    expect(runs).toEqual([[1], [2, 3]]);
  });

  it('with maxInFlight, a full run leaves at once, however many runs are under way', async () => {
    const { runs, batcher, release } = gated(2, false);
    const first = batcher.call(1);
    await nextTurn();
    // Five calls in one turn: two full runs leave now; the fifth waits for a run to return.
    const later = [2, 3, 4, 5, 6].map((n) => batcher.call(n));
    await nextTurn();
    expect(runs).toEqual([[1], [2, 3], [4, 5]]);
    release();
    expect(await Promise.all([first, ...later])).toEqual([1, 2, 3, 4, 5, 6]);
    expect(runs).toEqual([[1], [2, 3], [4, 5], [6]]);
  });
});
