/**
 * Resolutions of different customers share their hidden classes. The decision memo keeps one
 * resolution per cached customer and feature, so an object shape of its own per resolution (what
 * `{ ...x, y }` gives on Node 20's V8) costs memory per customer and makes every property read on
 * the decision path megamorphic. V8's own predicate, reached through `--allow-natives-syntax`.
 */
import v8 from 'node:v8';
import { describe, expect, it } from 'vitest';
import { resolveEntitlements, withUsage } from '../../src/domain/resolve.ts';
import type { ResolvedEntitlements, ResolvedMetered } from '../../src/domain/resolved.ts';
import { flag, metered, NOW, snapshot } from './builders.ts';

v8.setFlagsFromString('--allow-natives-syntax');
// The % syntax is parsed only by code compiled after the flag is set.
const haveSameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;

function resolveMany(count: number): ResolvedEntitlements[] {
  const out: ResolvedEntitlements[] = [];
  for (let i = 0; i < count; i++) {
    const snap = snapshot()
      .withFeature('api', 'metered')
      .withFeature('sso', 'boolean')
      .onPlan('pro', [flag('sso'), metered('api', 100 + i, { reset: 'month' })])
      .withOverride(`ovr_${i}`, 'sso', { type: 'boolean', enabled: true })
      .build();
    const base = resolveEntitlements({ ...snap, customerId: `cus_${i}` }, NOW, () => ({ used: 0 }));
    out.push(withUsage(base, snap, NOW, () => ({ used: i })));
  }
  return out;
}

describe('resolution shapes', () => {
  it('one hidden class for every resolution, entitlement and layer of a kind', () => {
    // Enough objects for V8's inline caches to reach their steady state.
    const all = resolveMany(300);
    const first = all[0]!;
    const api = (r: ResolvedEntitlements) => r.entitlements.get('api') as ResolvedMetered;
    const sso = (r: ResolvedEntitlements) => r.entitlements.get('sso')!;
    for (const r of all.slice(200)) {
      expect(haveSameMap(first, r)).toBe(true);
      expect(haveSameMap(api(first), api(r))).toBe(true);
      expect(haveSameMap(api(first).layers[0]!, api(r).layers[0]!)).toBe(true);
      expect(haveSameMap(sso(first).layers[0]!, sso(r).layers[0]!)).toBe(true);
    }
  });
});
