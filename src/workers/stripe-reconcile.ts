/**
 * Runs the Stripe reconciliation (modules/billing/reconcile.ts) in the worker role for every
 * environment with a Stripe secret key, every `STRIPE_RECONCILE_HOURS` (0: never), as a periodic
 * job (periodic-job.ts); without Redis the first run is one interval after start.
 */
import { executeReconciliation, type ReconciliationView } from '../modules/billing/reconcile.ts';
import { type AppDeps, systemContext } from '../platform/context.ts';
import { PeriodicJob } from './periodic-job.ts';

const QUEUE = 'stripe-reconcile';
const JOB_SCHEDULER_ID = 'stripe-reconcile';

export class StripeReconcileJob {
  private readonly job: PeriodicJob;
  private readonly intervalMs: number;

  constructor(
    private readonly deps: AppDeps,
    intervalMs = deps.config.stripeReconcileHours * 3_600_000,
  ) {
    this.intervalMs = intervalMs;
    this.job = new PeriodicJob(
      deps.config,
      deps.logger,
      {
        queue: QUEUE,
        schedulerId: JOB_SCHEDULER_ID,
        jobName: 'reconcile',
        intervalMs,
        firstRunMs: intervalMs,
        label: 'Stripe reconciliation',
        unref: true,
      },
      () => this.runOnce(),
    );
  }

  /** One run in each environment connected to Stripe; a failed run is recorded and logged. */
  async runOnce(): Promise<ReconciliationView[]> {
    const environments = await this.deps.db
      .selectFrom('stripe_settings')
      .select('environment')
      .where('secret_key', 'is not', null)
      .orderBy('environment')
      .execute();
    const runs: ReconciliationView[] = [];
    for (const { environment } of environments) {
      const ctx = systemContext(this.deps, environment, { type: 'system', id: null, name: 'reconcile job' });
      try {
        const { view, failure } = await executeReconciliation(ctx, {});
        if (failure) this.deps.logger.error({ err: failure, environment }, 'Stripe reconciliation failed');
        runs.push(view);
      } catch (err) {
        this.deps.logger.error({ err, environment }, 'Stripe reconciliation could not start');
      }
    }
    return runs;
  }

  async start(): Promise<void> {
    if (this.intervalMs > 0) await this.job.start();
  }

  /** Sets the job scheduler up again (Redis lost its data, and the scheduler with it). */
  renew(): Promise<void> {
    return this.job.renew();
  }

  stop(): Promise<void> {
    return this.job.stop();
  }
}
