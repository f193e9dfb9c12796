import pino from 'pino';

export type Logger = pino.Logger;

/**
 * Fields removed from every log line, wherever a caller put them: credentials in headers (an
 * error object of an HTTP client may carry its request's headers), secrets under their API and
 * code names, one level down and at the top. Log lines never carry request bodies or headers by
 * design; this is the net under that rule (test/integration/log-secrets.test.ts).
 */
export const REDACTED_PATHS = [
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'err.headers.authorization',
  'err.raw.headers.authorization',
  'err.request.headers.authorization',
  'err.config.headers.authorization',
  '*.authorization',
  ...[
    'secret',
    'secret_key',
    'webhook_secret',
    'secretKey',
    'webhookSecret',
    'token',
    'api_key',
    'apiKey',
  ].flatMap((name) => [name, `*.${name}`]),
];

/** The process's logger; `destination` (a stream or file descriptor) defaults to stdout. */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'tessera' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACTED_PATHS, remove: true },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
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
