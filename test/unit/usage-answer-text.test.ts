import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { answerJson } from '../../src/modules/metering/answer.ts';
import { answerJsonText } from '../../src/modules/metering/usage-fast-path.ts';

const amount = fc.oneof(
  fc.nat(1_000_000),
  fc.double({ min: 0, max: 1e22, noNaN: true, noDefaultInfinity: true }),
);
const instant = fc.date({ min: new Date('1970-01-01Z'), max: new Date('2100-01-01Z'), noInvalidDate: true });

describe("the usage fast path's answer text", () => {
  it("is the JSON encoder's text of the answer, whatever the figures", () => {
    fc.assert(
      fc.property(
        fc.record({
          accepted: fc.boolean(),
          used: amount,
          limit: fc.option(amount, { nil: null }),
          remaining: fc.option(amount, { nil: null }),
          resetsAt: fc.option(instant, { nil: null }),
          periodStart: instant,
          overage: amount,
          creditUsed: amount,
        }),
        (a) => {
          const answer = { ...a, ...(a.accepted ? {} : { reason: 'limit_exceeded' as const }) };
          expect(answerJsonText(answer)).toBe(JSON.stringify(answerJson(answer)));
        },
      ),
    );
  });
});
