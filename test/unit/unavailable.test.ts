import { describe, expect, it } from 'vitest';
import { ApiKeyResolver } from '../../src/platform/auth.ts';
import { ManualClock } from '../../src/platform/clock.ts';
import type { Db } from '../../src/platform/db.ts';
import { TryAgainLater } from '../../src/platform/errors.ts';
import { asUnavailable, unavailableDependency } from '../../src/platform/unavailable.ts';

const withCode = (message: string, code: string) => Object.assign(new Error(message), { code });

describe('dependency out of reach -> 503', () => {
  it('recognises what pg and ioredis throw when their server is away', () => {
    expect(unavailableDependency(new Error('Connection terminated unexpectedly'))).toBe('database');
    expect(
      unavailableDependency(withCode('terminating connection due to administrator command', '57P01')),
    ).toBe('database');
    expect(unavailableDependency(withCode('the database system is starting up', '57P03'))).toBe('database');
    expect(unavailableDependency(withCode('connect ECONNREFUSED 127.0.0.1:5432', 'ECONNREFUSED'))).toBe(
      'database',
    );
    expect(
      unavailableDependency(new Error("Stream isn't writeable and enableOfflineQueue options is false")),
    ).toBe('redis');
    const maxRetries = Object.assign(new Error('Reached the max retries per request limit (which is 2).'), {
      name: 'MaxRetriesPerRequestError',
    });
    expect(unavailableDependency(maxRetries)).toBe('redis');
    const loading = Object.assign(new Error('LOADING Redis is loading the dataset in memory'), {
      name: 'ReplyError',
    });
    expect(unavailableDependency(loading)).toBe('redis');
  });

  it('leaves every other failure alone (bugs stay 500, input errors stay 4xx)', () => {
    expect(unavailableDependency(new TypeError('x is undefined'))).toBeNull();
    expect(unavailableDependency(withCode('duplicate key value', '23505'))).toBeNull();
    expect(unavailableDependency(withCode('syntax error', '42601'))).toBeNull();
    expect(unavailableDependency(Object.assign(new Error('WRONGTYPE'), { name: 'ReplyError' }))).toBeNull();
    expect(unavailableDependency('a string')).toBeNull();
  });

  it('answers with Retry-After and a code naming the dependency', () => {
    const answer = asUnavailable(new Error('Connection terminated unexpectedly'));
    expect(answer).toBeInstanceOf(TryAgainLater);
    expect(answer).toMatchObject({ status: 503, code: 'database_unavailable', retryAfterSeconds: 2 });
  });
});

/** A database whose every query answers `row`, or throws while `down` is set. */
function fakeDb(row: Record<string, unknown>) {
  const state = { down: false, queries: 0 };
  const chain: Record<string, unknown> = {};
  for (const step of ['selectFrom', 'select', 'where']) chain[step] = () => chain;
  chain.executeTakeFirst = async () => {
    state.queries += 1;
    if (state.down) throw new Error('Connection terminated unexpectedly');
    return row;
  };
  return { db: chain as unknown as Db, state };
}

describe('API keys while the database cannot be reached', () => {
  const row = { id: 'key_1', name: 'k', environment: 'test', scopes: ['check'] };
  const secret = `sk_test_${'a'.repeat(20)}`;

  it('honours a key it had cached for up to 300 s past its end, then refuses it with the failure', async () => {
    const clock = new ManualClock('2026-12-07T12:00:00Z');
    const { db, state } = fakeDb(row);
    const resolver = new ApiKeyResolver(db, 5, { clock });
    expect((await resolver.resolve(secret))?.id).toBe('key_1');
    state.down = true;
    clock.advance(6_000); // lapsed
    expect((await resolver.resolve(secret))?.id).toBe('key_1');
    // Served from memory meanwhile, looked up again at most once a second.
    const asked = state.queries;
    for (let i = 0; i < 5; i++) expect(resolver.peek(secret)?.id).toBe('key_1');
    expect(state.queries).toBe(asked);
    clock.advance(300_000);
    expect(resolver.peek(secret)).toBeUndefined();
    await expect(resolver.resolve(secret)).rejects.toThrow('Connection terminated');
  });

  it('never honours a key it had not seen, and answers from the database again once it is back', async () => {
    const clock = new ManualClock('2026-12-07T12:00:00Z');
    const { db, state } = fakeDb(row);
    const resolver = new ApiKeyResolver(db, 5, { clock });
    state.down = true;
    await expect(resolver.resolve(secret)).rejects.toThrow('Connection terminated');
    state.down = false;
    expect((await resolver.resolve(secret))?.id).toBe('key_1');
  });
});
