import { createHash } from 'node:crypto';
import { Command, type Redis } from 'ioredis';
import { redisMasters } from '../../../platform/redis.ts';
import { COMMIT, CONSUME_MANY, HOLD, READ, RELEASE } from './lua.ts';
import { GUARD_OFF, GUARD_ON } from './lua-common.ts';

export interface LuaScript {
  name: string;
  source: string;
  sha: string;
}

function script(name: string, source: string): LuaScript {
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}

const SOURCES = {
  consumeMany: CONSUME_MANY,
  hold: HOLD,
  commit: COMMIT,
  release: RELEASE,
  read: READ,
};
type ScriptSet = Record<keyof typeof SOURCES, LuaScript>;

function scriptSet(guard: string, suffix: string): ScriptSet {
  const set = {} as ScriptSet;
  for (const [name, source] of Object.entries(SOURCES) as Array<[keyof typeof SOURCES, string]>)
    set[name] = script(`${name}${suffix}`, `${guard}${source}`);
  return set;
}

/** The scripts as they are. */
export const SCRIPTS = scriptSet(GUARD_OFF, '');

/**
 * The same scripts, each taking the epoch key as its last key and refusing to run when it is gone
 * (Redis lost its data: see GUARD_ON). The store uses these on a standalone Redis; on a cluster
 * the epoch key is in another slot than the customer's keys, and only the once-a-second look at
 * it notices a loss.
 */
const GUARDED_SCRIPTS = scriptSet(GUARD_ON, '-guarded');

const guardedOf = new Map<LuaScript, LuaScript>(
  (Object.keys(SOURCES) as Array<keyof typeof SOURCES>).map((name) => [SCRIPTS[name], GUARDED_SCRIPTS[name]]),
);

/** The guarded twin of one of SCRIPTS. */
export function guarded(lua: LuaScript): LuaScript {
  return guardedOf.get(lua) ?? lua;
}

/**
 * SCRIPT LOAD every script once at start-up, so the hot path is a bare EVALSHA; on a cluster into
 * every master (a master added later gets them on first use: see `runScript`).
 */
export async function loadScripts(redis: Redis): Promise<void> {
  const sources = [...Object.values(SCRIPTS), ...Object.values(GUARDED_SCRIPTS)].map((s) => s.source);
  await Promise.all(
    redisMasters(redis).flatMap((node) => sources.map((source) => node.script('LOAD', source))),
  );
}

function isNoScript(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}

/**
 * EVALSHA, reloading the script when Redis lost it (a restart; on a cluster, also a node that
 * joined: EVAL runs it there and leaves it loaded). On a standalone Redis the command
 * goes out as its wire text made here in one pass (`EncodedCall`); a cluster client needs ioredis's
 * own command, which it reads the keys of to find the slot.
 */
export async function runScript(
  redis: Redis,
  lua: LuaScript,
  keys: readonly string[],
  args: ReadonlyArray<string | number>,
): Promise<unknown> {
  const encoded = redis.isCluster ? null : encodeEvalsha(lua, keys, args);
  const send = () =>
    encoded === null
      ? redis.evalsha(lua.sha, keys.length, ...keys, ...args)
      : redis.sendCommand(new EncodedCall(encoded));
  try {
    return await send();
  } catch (err) {
    if (!isNoScript(err)) throw err;
    if (redis.isCluster) return redis.eval(lua.source, keys.length, ...keys, ...args);
    await redis.script('LOAD', lua.source);
    return send();
  }
}

/**
 * A command whose RESP text is made beforehand. ioredis's own command copies its arguments into a
 * flat array and then joins them piece by piece into a string that the socket write flattens
 * again; a consume call of 100 events has about 800 arguments, and that cost the API node about a
 * tenth of its CPU per event.
 */
class EncodedCall extends Command {
  constructor(private readonly encoded: string) {
    super('evalsha', [], { replyEncoding: 'utf8' });
  }

  override toWritable(): string {
    return this.encoded;
  }
}

/** A number as ioredis sends it: integers past 2^53 with all their digits. */
function numberText(n: number): string {
  return Number.isInteger(n) && !Number.isSafeInteger(n) ? BigInt(n).toString() : String(n);
}

/** `EVALSHA sha numkeys key... arg...` in RESP (an array of bulk strings), as ioredis writes it. */
export function encodeEvalsha(
  lua: LuaScript,
  keys: readonly string[],
  args: ReadonlyArray<string | number>,
): string {
  const numKeys = String(keys.length);
  const parts: string[] = [
    `*${3 + keys.length + args.length}\r\n$7\r\nevalsha\r\n$40\r\n${lua.sha}\r\n$${numKeys.length}\r\n${numKeys}\r\n`,
  ];
  for (const key of keys) parts.push(`$${Buffer.byteLength(key)}\r\n${key}\r\n`);
  for (const arg of args) {
    const text = typeof arg === 'string' ? arg : numberText(arg);
    parts.push(`$${Buffer.byteLength(text)}\r\n${text}\r\n`);
  }
  return parts.join('');
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
