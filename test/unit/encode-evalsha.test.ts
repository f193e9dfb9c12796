import fc from 'fast-check';
import { Command } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { encodeEvalsha, SCRIPTS } from '../../src/modules/metering/redis/scripts.ts';

describe('EVALSHA wire text', () => {
  it("is the text ioredis's own command writes, whatever the keys and arguments", () => {
    const arg = fc.oneof(
      fc.string({ unit: 'grapheme' }),
      fc.string({ unit: fc.constantFrom('\r', '\n', '$', '*', 'é', '😀', 'a') }),
      fc.integer(),
      fc.double({ noNaN: true }),
    );
    fc.assert(
      fc.property(fc.array(fc.string({ unit: 'grapheme' })), fc.array(arg), (keys, args) => {
        const lua = SCRIPTS.consumeMany;
        const theirs = new Command('evalsha', [lua.sha, keys.length, ...keys, ...args]).toWritable({});
        expect(encodeEvalsha(lua, keys, args)).toBe(theirs);
      }),
    );
  });
});
