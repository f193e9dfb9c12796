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
  private readonly pending: Array<{
    input: I;
    resolve: (output: O) => void;
    reject: (err: unknown) => void;
  }> = [];
  private scheduled = false;
  private inFlight = 0;

  constructor(
    private readonly run: (inputs: I[]) => Promise<O[]>,
    private readonly max: number,
    private readonly maxInFlight = Number.POSITIVE_INFINITY,
  ) {}

  call(input: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ input, resolve, reject });
      if (this.pending.length >= this.max) this.flush();
      else if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          this.flush();
        });
      }
    });
  }

  private flush(): void {
    while (this.pending.length >= this.max || (this.pending.length > 0 && this.inFlight < this.maxInFlight)) {
      const calls = this.pending.splice(0, this.max);
      this.inFlight += 1;
      this.run(calls.map((c) => c.input))
        .then(
          (outputs) => {
            calls.forEach((c, i) => {
              c.resolve(outputs[i]!);
            });
          },
          (err: unknown) => {
            for (const c of calls) c.reject(err);
          },
        )
        .finally(() => {
          this.inFlight -= 1;
          this.flush();
        });
    }
  }
}
