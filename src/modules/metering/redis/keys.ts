/**
 * Redis key layout. Every key of one customer carries the hash tag `{environment:customer}`, so a
 * customer's counters, credit, holds and idempotency answers share one Redis Cluster slot and one
 * Lua script can touch them all. On a cluster the not-yet-flushed event stream a script appends to
 * must live in that slot too, so there is one stream per slot, named with a short tag that hashes
 * to it; on a standalone Redis every event goes to the stream of slot 0 (see `slotOf` in
 * store.ts).
 * (Customer ids cannot contain braces, and the prefix cannot either, so the tag is unambiguous.)
 */
import { SLOT_COUNT as SLOTS, slotOf } from '../../../platform/redis-slots.ts';
import type { StoredPeriod } from '../store.ts';

export class UsageKeys {
  constructor(readonly prefix: string) {}

  customer(environment: string, customerId: string): string {
    return `${this.prefix}u:{${environment}:${customerId}}:`;
  }
  counter(base: string, feature: string, period: StoredPeriod): string {
    return `${base}c:${feature}:${period.start.getTime()}`;
  }
  credit(base: string, feature: string): string {
    return `${base}g:${feature}`;
  }
  idempotency(base: string, key: string): string {
    return `${base}i:${key}`;
  }
  holds(base: string, feature: string, period: StoredPeriod): string {
    return `${base}z:${feature}:${period.start.getTime()}`;
  }
  members(base: string, feature: string, period: StoredPeriod): string {
    return `${base}m:${feature}:${period.start.getTime()}`;
  }
  sketch(base: string, feature: string, period: StoredPeriod): string {
    return `${base}x:${feature}:${period.start.getTime()}`;
  }
  reservationState(base: string, id: string): string {
    return `${base}r:${id}`;
  }
  /** The stream of accepted events not yet in the ledger, for the customer's slot. */
  stream(environment: string, customerId: string): string {
    return this.streamOfSlot(slotOf(`${environment}:${customerId}`));
  }
  streamOfSlot(slot: number): string {
    return `${this.prefix}u:q:{${slotTag(slot)}}`;
  }
  /** Slots that have (had) a stream: the flusher's list of where to look. */
  get slots(): string {
    return `${this.prefix}u:slots`;
  }
  /** Slots whose streams had entries appended since a flusher last looked (a hint, see flusher.ts). */
  get written(): string {
    return `${this.prefix}u:written`;
  }
  /** Equals the ledger's marker while Redis holds counters built from that ledger. */
  get marker(): string {
    return `${this.prefix}u:marker`;
  }
  /**
   * Exists while Redis holds the counters (a new random value each time they are rebuilt): gone
   * means Redis lost its data, and the scripts then refuse to count (see counter-recovery.ts).
   */
  get epoch(): string {
    return `${this.prefix}epoch`;
  }
  /** The lock of the one process that rebuilds the counters after a loss. */
  get rebuilding(): string {
    return `${this.prefix}u:rebuilding`;
  }
}

export const FLUSH_GROUP = 'ledger';

export { slotOf };

let tags: string[] | null = null;

/** A short string whose slot is `slot` (the table is built once: about 160k hashes). */
function slotTag(slot: number): string {
  if (tags === null) {
    const table: string[] = new Array(SLOTS);
    let found = 0;
    for (let n = 0; found < SLOTS; n++) {
      const candidate = n.toString(36);
      const s = slotOf(candidate);
      if (table[s] === undefined) {
        table[s] = candidate;
        found += 1;
      }
    }
    tags = table;
  }
  return tags[slot]!;
}
