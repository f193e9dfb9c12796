import { TryAgainLater } from '../../../platform/errors.ts';

/** What Retry-After says while the counters are rebuilt (a rebuild takes about this long or less). */
const REBUILD_RETRY_AFTER_SECONDS = 2;

/**
 * Redis lost its data and the usage counters are being rebuilt from the ledger: usage,
 * reservations and metered checks answer 503 until they are, rather than count from zero.
 */
export class CountersRebuilding extends TryAgainLater {
  constructor() {
    super(
      'counters_rebuilding',
      'Usage counters are being rebuilt from the ledger (Redis lost its data); try again shortly',
      REBUILD_RETRY_AFTER_SECONDS,
    );
  }
}

/** A script's refusal because the epoch key is gone (see GUARD_ON in lua-common.ts). */
export function isCountersLost(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('EPOCHLOST');
}
