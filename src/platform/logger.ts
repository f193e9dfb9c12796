import pino from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string): Logger {
  return pino({
    level,
    base: { service: 'tessera' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['req.headers.authorization', '*.secret', '*.secret_key', '*.webhook_secret'],
      remove: true,
    },
  });
}

/**
 * Logs a warning at most once per `intervalMs` for each key, counting what it held back and
 * saying so in the next line: for conditions that fail on every request that reaches them, where
 * a line per request would flood the log.
 */
export class ThrottledWarnings {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  constructor(
    private readonly logger: Logger,
    private readonly now: () => number,
    private readonly intervalMs = 60_000,
    private readonly maxKeys = 1_000,
  ) {}

  warn(key: string, fields: Record<string, unknown>, message: string): void {
    const now = this.now();
    const seen = this.last.get(key);
    if (seen !== undefined && now - seen.at < this.intervalMs) {
      seen.suppressed += 1;
      return;
    }
    if (seen === undefined && this.last.size >= this.maxKeys) this.last.clear();
    this.logger.warn({ ...fields, suppressed: seen?.suppressed ?? 0 }, message);
    this.last.set(key, { at: now, suppressed: 0 });
  }
}
