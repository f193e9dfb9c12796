import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type ChainedFields, chainHash, chainPieces } from '../../src/platform/audit-chain.ts';

const json = fc.jsonValue({ maxDepth: 3 });

/** What `tessera_audit_append` (migration 20261207200000) hashes, from the pieces and the chain head. */
function hashOfPieces([head, mid, tail]: [string, string, string], index: number, prevHash: string): string {
  return createHash('sha256')
    .update(`${prevHash}${head}${index}${mid}${JSON.stringify(prevHash)}${tail}`)
    .digest('hex');
}

describe('audit chain pieces', () => {
  it('hash the same bytes as chainHash, whatever the fields hold', () => {
    fc.assert(
      fc.property(
        fc.record({
          id: fc.string(),
          environment: fc.string(),
          actor: fc.record({
            type: fc.constantFrom('api_key', 'system'),
            id: fc.option(fc.string()),
            person: fc.option(fc.string({ unit: 'grapheme' }), { nil: undefined }),
          }),
          action: fc.string({ unit: 'grapheme' }),
          target: fc.record({ type: fc.string(), id: fc.string() }),
          customer_id: fc.option(fc.string()),
          before: json,
          after: json,
          request_id: fc.option(fc.string()),
          at: fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
        }),
        fc.nat(),
        fc.stringMatching(/^[0-9a-f]{64}$/),
        (fields, index, prev) => {
          const stored = JSON.parse(JSON.stringify(fields)) as Omit<
            ChainedFields,
            'chain_index' | 'prev_hash'
          >;
          const whole: ChainedFields = { ...stored, chain_index: index, prev_hash: prev };
          expect(hashOfPieces(chainPieces(stored), index, prev)).toBe(chainHash(whole));
        },
      ),
      { numRuns: 300 },
    );
  });
});
