import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { parseCheck } from '../../src/http/check-fast-path.ts';
import { CheckBody } from '../../src/modules/entitlements/schema.ts';
import { parseUsageEvent } from '../../src/modules/metering/parse-event.ts';
import { UsageBatchBody, UsageEventBody } from '../../src/modules/metering/schema.ts';
import { parseUsageBatch } from '../../src/modules/metering/usage-fast-path.ts';
import { findViolation } from '../../src/platform/input-rules.ts';

/**
 * The node:http fast path's hand-written parsers against what the app does with the same bytes:
 * read them as strict UTF-8, parse the JSON, apply the input rule (src/platform/input-rules.ts),
 * then the route's zod schema. A body the app takes must parse to exactly the schema's output; a
 * body the app refuses must make the parser return null, so the app answers it.
 */
type Verdict = { ok: true; value: unknown } | { ok: false; why: string };

function appReads(schema: z.ZodType, body: Buffer): Verdict {
  if (!isUtf8(body)) return { ok: false, why: 'utf-8' };
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return { ok: false, why: 'json' };
  }
  if (findViolation(value) !== null) return { ok: false, why: 'input rule' };
  const parsed = schema.safeParse(value);
  return parsed.success ? { ok: true, value: parsed.data } : { ok: false, why: 'schema' };
}

function sameAsApp(schema: z.ZodType, parse: (body: Buffer) => unknown, body: Buffer): Verdict {
  const app = appReads(schema, body);
  const fast = parse(body);
  if (app.ok) expect(fast).toStrictEqual(app.value);
  else expect(fast).toBeNull();
  return app;
}

const RUNS = { numRuns: 400 };

/**
 * Mutated bodies: the parser must agree with the app on each (the same input or null). A mutation
 * may land on a value that is still valid (a number in range, a string at its limit), so the
 * generator only has to produce mostly refused bodies.
 */
function agreesOnMutations(
  schema: z.ZodType,
  parse: (body: Buffer) => unknown,
  bodies: fc.Arbitrary<unknown>,
) {
  let refused = 0;
  fc.assert(
    fc.property(bodies, (body) => {
      if (!sameAsApp(schema, parse, encode(body)).ok) refused += 1;
    }),
    RUNS,
  );
  expect(refused).toBeGreaterThan(RUNS.numRuns / 2);
}

// ---- strings -------------------------------------------------------------------------------
const BAD_TEXT = ['\u0000', '\ud800', '\udfff', 'a\u0000b', 'x\udc00y', '\ud83d'];
/** Well-formed strings of `min`-`max` UTF-16 units, ASCII mostly, some astral and escaped. */
const text = (min: number, max: number) =>
  fc
    .oneof(
      { weight: 6, arbitrary: fc.string({ minLength: min, maxLength: max }) },
      { weight: 2, arbitrary: fc.string({ unit: 'binary', minLength: min, maxLength: max }) },
      { weight: 1, arbitrary: fc.constantFrom('acme', 'é', '"quoted"', '\\', '\n\t', '😀', '\u2028') },
    )
    .filter((s) => s.length >= min && s.length <= max && s.isWellFormed() && !s.includes('\u0000'));
/** Strings around a limit: one under, at, one over, and empty. */
const sized = (max: number) =>
  fc.oneof(
    fc.constantFrom(max - 1, max, max + 1, 0).map((n) => 'k'.repeat(n)),
    fc.constantFrom(max - 1, max).map((n) => `${'k'.repeat(Math.max(0, n - 2))}😀`),
  );
const badText = fc.oneof(
  fc.constantFrom(...BAD_TEXT),
  fc.tuple(fc.string(), fc.constantFrom(...BAD_TEXT)).map(([s, b]) => s + b),
);
const notAString = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constant([]),
  fc.constant({}),
  fc.constant(['a']),
);
const numberish = fc.oneof(
  fc.integer({ min: -5, max: 5 }),
  fc.constantFrom(1e12, 1e12 + 1, 999_999_999_999, 2 ** 53, -0, 0.5, 1.5, -1, 1e300),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom('1', null, true, [], {}),
);

// ---- bodies --------------------------------------------------------------------------------
const encode = (value: unknown) => Buffer.from(JSON.stringify(value));
/** Bodies that are not what any of these routes takes, or not even JSON or UTF-8. */
const brokenBodies = fc.oneof(
  fc
    .constantFrom('[]', 'null', '"s"', '1', '{', '{"customer_id":"a",}', '', '{}', ' {} ')
    .map((t) => Buffer.from(t)),
  fc.constantFrom(
    Buffer.concat([Buffer.from('{"customer_id":"a'), Buffer.from([0xff]), Buffer.from('","feature":"f"}')]),
    Buffer.concat([
      Buffer.from('{"customer_id":"\u00e9'),
      Buffer.from([0xc3]),
      Buffer.from('","feature":"f"}'),
    ]),
    Buffer.from('{"customer_id":"a\\u0000","feature":"f"}'),
    Buffer.from('{"customer_id":"a","feature":"\\ud800"}'),
  ),
);
/** A valid object with one field replaced by `value` (or added, when the name is new). */
const withField = <T extends Record<string, unknown>>(
  base: fc.Arbitrary<T>,
  name: string,
  value: fc.Arbitrary<unknown>,
) => fc.tuple(base, value).map(([b, v]) => ({ ...b, [name]: v }));

// "__proto__" is handed to the app (see below); other names of Object.prototype are plain keys.
// fast-check's strings include "__proto__" now and then on purpose, so it is filtered out here.
const contextKey = fc.oneof(
  text(0, 100).filter((k) => k !== '__proto__'),
  fc.constantFrom('constructor', 'toString', 'hasOwnProperty', ''),
);
const scalar = fc.oneof(
  text(0, 40),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
);
const validContext = fc.dictionary(contextKey, scalar, { maxKeys: 50 });

const validCheck = fc.record(
  {
    customer_id: text(1, 255),
    feature: text(1, 64),
    quantity: fc.oneof(fc.integer({ min: 1, max: 1e12 }), fc.constantFrom(1, 1e12)),
    context: validContext,
  },
  { requiredKeys: ['customer_id', 'feature'] },
);

const invalidCheck = fc.oneof(
  withField(validCheck, 'customer_id', fc.oneof(notAString, sized(255), badText)),
  withField(validCheck, 'feature', fc.oneof(notAString, sized(64), badText)),
  withField(validCheck, 'quantity', numberish),
  withField(validCheck, 'extra', fc.anything()),
  withField(validCheck, 'timestamp', fc.constant('2026-01-01T00:00:00Z')),
  withField(
    validCheck,
    'context',
    fc.oneof(
      fc.constantFrom(null, [], 'ctx', 1, [1]),
      fc.dictionary(fc.string({ minLength: 101, maxLength: 120 }), scalar, { minKeys: 1, maxKeys: 3 }),
      fc.dictionary(
        text(1, 10),
        fc.oneof(fc.constant(null), fc.constant({}), fc.constant([]), fc.constant({ a: 1 })),
        {
          minKeys: 1,
          maxKeys: 3,
        },
      ),
      fc.dictionary(text(1, 20), scalar, { minKeys: 51, maxKeys: 60 }),
      fc.dictionary(badText, scalar, { minKeys: 1, maxKeys: 2 }),
      fc.dictionary(text(1, 10), badText, { minKeys: 1, maxKeys: 2 }),
    ),
  ),
  fc.record({ customer_id: text(1, 255) }),
  fc.record({ feature: text(1, 64) }),
);

const validEvent = fc.record(
  {
    customer_id: text(1, 255),
    feature: text(1, 64),
    value: fc.oneof(fc.integer({ min: 0, max: 1e12 }), fc.constantFrom(0, 1e12)),
    member: fc.oneof(text(1, 255), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true })),
    idempotency_key: text(1, 255),
  },
  { requiredKeys: ['customer_id', 'feature', 'idempotency_key'] },
);

const invalidEvent = fc.oneof(
  withField(validEvent, 'customer_id', fc.oneof(notAString, sized(255), badText)),
  withField(validEvent, 'feature', fc.oneof(notAString, sized(64), badText)),
  withField(validEvent, 'idempotency_key', fc.oneof(notAString, sized(255), badText)),
  withField(validEvent, 'value', numberish),
  withField(validEvent, 'member', fc.oneof(fc.constantFrom('', null, true, [], {}), sized(255), badText)),
  withField(validEvent, 'extra', fc.anything()),
  withField(validEvent, 'timestamp', fc.constantFrom('yesterday', '2026-13-01T00:00:00Z', 1, null)),
  fc.record({ customer_id: text(1, 255), feature: text(1, 64) }),
);

describe('the check fast path parses exactly what POST /v1/check takes', () => {
  it('valid bodies: the same input as the CheckBody schema gives', () => {
    fc.assert(
      fc.property(validCheck, (body) => {
        expect(sameAsApp(CheckBody, parseCheck, encode(body))).toMatchObject({ ok: true });
      }),
      RUNS,
    );
  });

  it('invalid bodies (wrong types, extra fields, out-of-range numbers, NUL and unpaired surrogates): null, for the app to answer', () => {
    agreesOnMutations(CheckBody, parseCheck, invalidCheck);
    fc.assert(
      fc.property(brokenBodies, (body) => {
        expect(sameAsApp(CheckBody, parseCheck, body)).toMatchObject({ ok: false });
      }),
    );
  });
});

describe('a context key the schema drops', () => {
  // zod builds the context record by assignment, so an own "__proto__" key (which JSON.parse
  // makes) is not in what the route's handler gets. The fast path must not answer with it.
  it('"__proto__" in context: the app answers, with the key dropped', () => {
    const body = Buffer.from(
      '{"customer_id":"acme","feature":"sso","context":{"__proto__":"x","plan":"pro"}}',
    );
    expect(appReads(CheckBody, body)).toStrictEqual({
      ok: true,
      value: { customer_id: 'acme', feature: 'sso', context: { plan: 'pro' } },
    });
    expect(parseCheck(body)).toBeNull();
    fc.assert(
      fc.property(validCheck, scalar, (check, value) => {
        const withProto = encode(check)
          .toString()
          .replace(/}$/, `,"context":{"__proto__":${JSON.stringify(value)}}}`);
        // The text keeps the last "context" key: the one with "__proto__".
        expect(appReads(CheckBody, Buffer.from(withProto))).toMatchObject({ ok: true });
        expect(parseCheck(Buffer.from(withProto))).toBeNull();
      }),
    );
  });
});

describe('the usage fast path parses exactly what POST /v1/usage takes', () => {
  it('valid events: the same input as the UsageEvent schema gives', () => {
    fc.assert(
      fc.property(validEvent, (event) => {
        expect(sameAsApp(UsageEventBody, parseUsageEvent, encode(event))).toMatchObject({ ok: true });
      }),
      RUNS,
    );
  });

  it('invalid events: null, for the app to answer', () => {
    agreesOnMutations(UsageEventBody, parseUsageEvent, invalidEvent);
    fc.assert(
      fc.property(brokenBodies, (body) => {
        expect(sameAsApp(UsageEventBody, parseUsageEvent, body)).toMatchObject({ ok: false });
      }),
    );
  });

  it('an event with a timestamp is always handed to the app, which alone checks timestamps', () => {
    fc.assert(
      fc.property(
        validEvent,
        fc.constantFrom('2026-01-01T00:00:00Z', '2026-01-01T00:00:00.123+02:00'),
        (event, timestamp) => {
          const body = encode({ ...event, timestamp });
          expect(appReads(UsageEventBody, body)).toMatchObject({ ok: true });
          expect(parseUsageEvent(body)).toBeNull();
        },
      ),
    );
  });
});

describe('the usage batch fast path parses exactly what POST /v1/usage/batch takes', () => {
  // The parser hands the service the events alone.
  const parseBatch = (body: Buffer) => {
    const events = parseUsageBatch(body);
    return events === null ? null : { events };
  };
  const events = fc.array(fc.oneof(validEvent, invalidEvent, fc.anything()), { minLength: 1, maxLength: 30 });
  const validBatch = events.map((list) => ({ events: list }));
  const invalidBatch = fc.oneof(
    fc.constant({ events: [] }),
    fc.constant({ events: Array.from({ length: 1001 }, () => ({})) }),
    fc.constantFrom({ events: {} }, { events: null }, { events: 'e' }, {}),
    withField(validBatch, 'extra', fc.anything()),
    withField(validBatch, 'Events', fc.anything()),
  );

  it('valid batches: the same events as the UsageBatch schema gives (each event is checked by the service)', () => {
    fc.assert(
      fc.property(validBatch, (batch) => {
        // Events that break the input rule are the service's to refuse (it hands the batch to
        // the app): they are left out here.
        fc.pre(findViolation(batch) === null);
        expect(sameAsApp(UsageBatchBody, parseBatch, encode(batch))).toMatchObject({ ok: true });
      }),
      RUNS,
    );
    // At the limit: 1,000 events.
    const full = {
      events: Array.from({ length: 1000 }, (_, i) => ({
        customer_id: 'c',
        feature: 'f',
        idempotency_key: `k${i}`,
      })),
    };
    expect(sameAsApp(UsageBatchBody, parseBatch, encode(full))).toMatchObject({ ok: true });
  });

  it('invalid batches: null, for the app to answer', () => {
    agreesOnMutations(UsageBatchBody, parseBatch, invalidBatch);
    fc.assert(
      fc.property(brokenBodies, (body) => {
        expect(sameAsApp(UsageBatchBody, parseBatch, body)).toMatchObject({ ok: false });
      }),
    );
  });
});
