import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { COMMIT, CONSUME, HOLD, READ, RELEASE } from './lua.ts';

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
 * Many calls of one script in one explicit pipeline (one round trip, in order). Lighter on the
 * client than auto-pipelining for large batches. If Redis lost the script every call failed
 * without running, so they are all sent again after a SCRIPT LOAD.
 */
export async function runScriptBatch(
  redis: Redis,
  lua: LuaScript,
  calls: readonly ScriptCall[],
): Promise<unknown[]> {
  const send = async () => {
    const pipeline = redis.pipeline();
    for (const call of calls) pipeline.evalsha(lua.sha, call.keys.length, ...call.keys, ...call.args);
    return (await pipeline.exec()) ?? [];
  };
  let replies = await send();
  if (replies.some(([err]) => isNoScript(err))) {
    await redis.script('LOAD', lua.source);
    replies = await send();
  }
  return replies.map(([err, value]) => {
    if (err) throw err;
    return value;
  });
}
