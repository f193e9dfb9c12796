import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { COMMIT, CONSUME, CONSUME_MANY, HOLD, READ, RELEASE } from './lua.ts';

export interface LuaScript {
  name: string;
  source: string;
  sha: string;
}

function script(name: string, source: string): LuaScript {
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}

export const SCRIPTS = {
  consume: script('consume', CONSUME),
  consumeMany: script('consume-many', CONSUME_MANY),
  hold: script('hold', HOLD),
  commit: script('commit', COMMIT),
  release: script('release', RELEASE),
  read: script('read', READ),
};

/** SCRIPT LOAD every script once at start-up, so the hot path is a bare EVALSHA. */
export async function loadScripts(redis: Redis): Promise<void> {
  await Promise.all(Object.values(SCRIPTS).map((s) => redis.script('LOAD', s.source)));
}

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}

/**
 * EVALSHA, reloading the script when Redis lost it (a restart). With auto-pipelining, calls made
 * in the same tick leave in one round trip, in call order.
 */
export async function runScript(
  redis: Redis,
  lua: LuaScript,
  keys: readonly string[],
  args: ReadonlyArray<string | number>,
): Promise<unknown> {
  try {
    return await redis.evalsha(lua.sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!isNoScript(err)) throw err;
    await redis.script('LOAD', lua.source);
    return redis.evalsha(lua.sha, keys.length, ...keys, ...args);
  }
}

export interface ScriptCall {
  keys: readonly string[];
  args: ReadonlyArray<string | number>;
}

/**
 * Collects the calls made during one turn of the event loop and runs them together: requests
 * read in the same turn (many connections, or one batch) share one script call instead of paying
 * the client's and Redis's per-command cost each. The run happens in setImmediate, after every
 * socket read of the turn, or as soon as `max` calls are waiting (bounding how long one script
 * call holds Redis). `run` answers the inputs in order; if it fails, every call of that run fails.
 *
 * With `maxInFlight`, at most that many runs of fewer than `max` calls are under way at once:
 * calls made meanwhile wait for one to finish and then leave together (up to `max` a run). A
 * trickle of calls then costs a round trip per reply instead of one per turn of the event loop.
 * A full run leaves at once whatever is under way: it has nothing to wait for, and holding it back
 * would only leave Redis idle (a batch of 100 events is one full run).
 */
export class TickBatcher<I, O> {
  /** Waiting calls, in order: one input each, or a caller's several (`callAll`, at most `max`). */
  private readonly pending: Array<{
    inputs: I[];
    resolve: (outputs: O[]) => void;
    reject: (err: unknown) => void;
  }> = [];
  /** Inputs waiting, over every pending entry. */
  private waiting = 0;
  private scheduled = false;
  private inFlight = 0;

  constructor(
    private readonly run: (inputs: I[]) => Promise<O[]>,
    private readonly max: number,
    private readonly maxInFlight = Number.POSITIVE_INFINITY,
  ) {}

  call(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.enqueue([input], (outputs) => resolve(outputs[0]!), reject);
    });
  }

  /**
   * Several calls with one promise for all (a batch request's events): the same runs as a `call`
   * each, without a promise each. Up to `max` of them stay in one run.
   */
  callAll(inputs: I[]): Promise<O[]> {
    if (inputs.length <= this.max)
      return new Promise<O[]>((resolve, reject) => {
        this.enqueue(inputs, resolve, reject);
      });
    const parts: Promise<O[]>[] = [];
    for (let i = 0; i < inputs.length; i += this.max) parts.push(this.callAll(inputs.slice(i, i + this.max)));
    return Promise.all(parts).then((outputs) => outputs.flat() as O[]);
  }

  private enqueue(inputs: I[], resolve: (outputs: O[]) => void, reject: (err: unknown) => void): void {
    if (inputs.length === 0) {
      resolve([]);
      return;
    }
    this.pending.push({ inputs, resolve, reject });
    this.waiting += inputs.length;
    if (this.waiting >= this.max) this.flush();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    }
  }

  private flush(): void {
    while (this.waiting >= this.max || (this.waiting > 0 && this.inFlight < this.maxInFlight)) {
      // Whole entries, in order, up to `max` inputs (an entry is never split: it holds at most `max`).
      let count = 0;
      let taken = 0;
      while (taken < this.pending.length && count + this.pending[taken]!.inputs.length <= this.max) {
        count += this.pending[taken]!.inputs.length;
        taken += 1;
      }
      const entries = this.pending.splice(0, taken);
      this.waiting -= count;
      const inputs = entries.length === 1 ? entries[0]!.inputs : entries.flatMap((e) => e.inputs);
      this.inFlight += 1;
      this.run(inputs)
        .then(
          (outputs) => {
            if (entries.length === 1) {
              entries[0]!.resolve(outputs);
              return;
            }
            let next = 0;
            for (const e of entries) {
              e.resolve(outputs.slice(next, next + e.inputs.length));
              next += e.inputs.length;
            }
          },
          (err: unknown) => {
            for (const e of entries) e.reject(err);
          },
        )
        .finally(() => {
          this.inFlight -= 1;
          this.flush();
        });
    }
  }
}
