/**
 * Typed domain errors, mapped to HTTP in one table (`problemFor`) and sent as RFC 9457
 * problem+json with a stable machine `code`.
 */
export interface FieldError {
  path: string;
  message: string;
}

export abstract class AppError extends Error {
  abstract readonly status: number;
  abstract readonly code: string;
  readonly errors?: FieldError[];
  /** Extra members of the problem document (RFC 9457 extensions), e.g. the rule a change broke. */
  readonly extensions?: Record<string, unknown>;
  constructor(message: string, errors?: FieldError[]) {
    super(message);
    this.name = new.target.name;
    if (errors) this.errors = errors;
  }
}

export class NotFound extends AppError {
  readonly status = 404;
  readonly code = 'not_found';
  constructor(
    readonly entity: string,
    readonly id: string,
  ) {
    super(`${entity} '${id}' was not found`);
  }
}

export class Conflict extends AppError {
  readonly status = 409;
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Well-formed input that the current state or catalog cannot accept (unknown feature, bad CEL...). */
export class Unprocessable extends AppError {
  readonly status = 422;
  constructor(
    readonly code: string,
    message: string,
    errors?: FieldError[],
  ) {
    super(message, errors);
  }
}

export class ValidationFailed extends AppError {
  readonly status = 400;
  readonly code = 'validation_failed';
  constructor(errors: FieldError[], message = 'The request is not valid') {
    super(message, errors);
  }
}

export class BadRequest extends AppError {
  readonly status = 400;
  constructor(
    readonly code: string,
    message: string,
    errors?: FieldError[],
  ) {
    super(message, errors);
  }
}

export class Unauthorized extends AppError {
  readonly status = 401;
  readonly code = 'unauthorized';
}

export class Forbidden extends AppError {
  readonly status = 403;
  readonly code = 'insufficient_scope';
}

export class PayloadTooLarge extends AppError {
  readonly status = 413;
  readonly code = 'payload_too_large';
}

export class ServiceUnavailable extends AppError {
  readonly status = 503;
  readonly code = 'unavailable';
}

/** An upstream service (Stripe) refused or failed: its message is passed on, nothing changed here. */
export class BadGateway extends AppError {
  readonly status = 502;
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Not now, soon: answered 503 with `Retry-After` (seconds). */
export class TryAgainLater extends AppError {
  readonly status = 503;
  constructor(
    readonly code: string,
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(message);
  }
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
};

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  request_id: string;
  errors?: FieldError[];
  [extension: string]: unknown;
}

export function problem(
  status: number,
  code: string,
  detail: string,
  requestId: string,
  errors?: FieldError[],
): Problem {
  return {
    type: `https://tessera.dev/problems/${code.replaceAll('_', '-')}`,
    title: TITLES[status] ?? 'Error',
    status,
    detail,
    code,
    request_id: requestId,
    ...(errors ? { errors } : {}),
  };
}

/** The one mapping from any thrown value to a problem document. */
export function problemFor(err: unknown, requestId: string): Problem {
  if (err instanceof AppError) {
    const body = problem(err.status, err.code, err.message, requestId, err.errors);
    return err.extensions ? { ...err.extensions, ...body } : body;
  }
  return problem(500, 'internal_error', 'An unexpected error occurred; it has been logged', requestId);
}
