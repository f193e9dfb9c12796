import { AppError } from '../../platform/errors.ts';

/** 403 with a governance reason (`self_approval`, `not_an_approver`, `sod_duty_conflict`). */
export class DecisionRefused extends AppError {
  readonly status = 403;
  declare readonly extensions?: Record<string, unknown>;
  constructor(
    readonly code: string,
    message: string,
    extensions?: Record<string, unknown>,
  ) {
    super(message);
    if (extensions) this.extensions = extensions;
  }
}
