/**
 * Runs the Stripe usage reporter (modules/billing/usage-report.ts) in the worker role, every
 * interval (periodic-job.ts: a BullMQ job scheduler with Redis, a timer in process without).
 */
import {
  StripeUsageReporter,
  type UsageReportOptions,
  type UsageReportRun,
} from '../modules/billing/usage-report.ts';
import type { AppDeps } from '../platform/context.ts';
import { PeriodicJob } from './periodic-job.ts';

const QUEUE = 'stripe-usage';
const JOB_SCHEDULER_ID = 'stripe-usage-report';

export class StripeUsageReportJob {
  readonly reporter: StripeUsageReporter;
  private readonly job: PeriodicJob;

  constructor(deps: AppDeps, intervalMs = 10_000, options: UsageReportOptions = {}) {
    this.reporter = new StripeUsageReporter(deps, options);
    this.job = new PeriodicJob(
      deps.config,
      deps.logger,
      {
        queue: QUEUE,
        schedulerId: JOB_SCHEDULER_ID,
        jobName: 'report',
        intervalMs,
        firstRunMs: 0,
        label: 'Stripe usage report',
      },
      () => this.runOnce(),
    );
  }

  runOnce(): Promise<UsageReportRun> {
    return this.reporter.runOnce();
  }

  start(): Promise<void> {
    return this.job.start();
  }

  /** Sets the job scheduler up again (Redis lost its data, and the scheduler with it). */
  renew(): Promise<void> {
    return this.job.renew();
  }

  stop(): Promise<void> {
    return this.job.stop();
  }
}
