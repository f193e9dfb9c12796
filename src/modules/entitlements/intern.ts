import { LRUCache } from 'lru-cache';
import type { Feature, PlanVersion } from '../../domain/types.ts';

/**
 * Every snapshot of an environment loads the same catalog features and, per plan, the same plan
 * versions. Equal content is shared between snapshots instead of kept once per customer, which
 * keeps the warm working set of a large customer base small (snapshots are never mutated).
 * Entries are keyed by content, so a changed catalog simply makes new entries, and bounded, so
 * content nobody loads any more is forgotten.
 */
class Interner<T> {
  private readonly entries = new LRUCache<string, { value: T }>({ max: 10_000 });

  intern(value: T, key: string): T {
    const hit = this.entries.get(key);
    if (hit) return hit.value;
    this.entries.set(key, { value });
    return value;
  }
}

const featureMaps = new Interner<Map<string, Feature>>();
const planVersions = new Interner<PlanVersion>();

export function internFeatures(features: Map<string, Feature>): Map<string, Feature> {
  return featureMaps.intern(features, JSON.stringify([...features.entries()]));
}

export function internPlanVersion(version: PlanVersion): PlanVersion {
  return planVersions.intern(version, JSON.stringify(version));
}

export function internPlanVersions(versions: Map<string, PlanVersion>): Map<string, PlanVersion> {
  for (const [key, version] of versions) versions.set(key, internPlanVersion(version));
  return versions;
}
