/**
 * A small scenario builder over the HTTP API, so multi-step entitlement setups read like the story
 * they tell:
 *
 *   const s = await scenario(app)
 *     .feature('sso', 'boolean')
 *     .feature('api_calls', 'metered')
 *     .plan('pro', [{ feature: 'sso' }, { feature: 'api_calls', limit: 1000 }])
 *     .customer('acme')
 *     .onPlan('pro');
 *   expect((await s.check('sso')).allowed).toBe(true);
 *
 * Names are short and scoped: each scenario gets its own suffix, so `sso` becomes `sso_s3k9` in the
 * database and tests sharing an app never see each other's features, plans or customers.
 * `s.key('sso')` gives the real key. Everything goes through `app.json` with the admin key.
 */
import { randomBytes } from 'node:crypto';
import { ManualClock } from '../../src/platform/clock.ts';
import type { TestApp } from './harness.ts';

type Body = Record<string, unknown>;
type FeatureType = 'boolean' | 'config' | 'metered';
export type EntitlementSpec = { feature: string } & Body;
export interface PlanOptions {
  addon?: boolean;
  trial?: { days: number; on_end: 'convert' | 'cancel' | 'downgrade'; downgrade_to?: string };
}
export interface SubscribeOptions {
  plan_version?: number;
  quantity?: number;
  trial_days?: number;
  starts_at?: string;
}

export const DAY = 86_400_000;
let counter = 0;

export class HttpError extends Error {}

export class Scenario {
  readonly suffix = `s${++counter}${randomBytes(2).toString('hex')}`;
  customerId = '';
  /** Subscription ids by the short plan name they were created with. */
  readonly subscriptions = new Map<string, string>();

  constructor(readonly app: TestApp) {}

  key(name: string): string {
    return `${name}_${this.suffix}`;
  }

  async call<T = Body>(method: string, path: string, body?: unknown, expected = [200, 201]): Promise<T> {
    const res = await this.app.json<T>(method, path, body);
    if (!expected.includes(res.status)) {
      throw new HttpError(`${method} ${path} answered ${res.status}: ${JSON.stringify(res.body)}`);
    }
    return res.body;
  }

  async feature(name: string, type: FeatureType, extra: Body = {}): Promise<void> {
    await this.call('POST', '/v1/features', { key: this.key(name), name, type, ...extra });
  }

  private entitlements(list: EntitlementSpec[]): Body[] {
    return list.map((e) => ({ ...e, feature: this.key(e.feature) }));
  }

  private trial(options: PlanOptions) {
    if (!options.trial) return {};
    const { downgrade_to, ...rest } = options.trial;
    return { trial: { ...rest, ...(downgrade_to ? { downgrade_to: this.key(downgrade_to) } : {}) } };
  }

  async plan(name: string, entitlements: EntitlementSpec[], options: PlanOptions = {}): Promise<void> {
    await this.call('POST', '/v1/plans', {
      key: this.key(name),
      name,
      addon: options.addon ?? false,
      entitlements: this.entitlements(entitlements),
      ...this.trial(options),
    });
  }

  async planVersion(name: string, entitlements: EntitlementSpec[], options: PlanOptions = {}): Promise<Body> {
    return this.call('POST', `/v1/plans/${this.key(name)}/versions`, {
      entitlements: this.entitlements(entitlements),
      ...this.trial(options),
    });
  }

  async settings(patch: Body): Promise<void> {
    const fallback =
      typeof patch.fallback_plan === 'string' ? { fallback_plan: this.key(patch.fallback_plan) } : {};
    await this.call('PATCH', '/v1/settings', { ...patch, ...fallback });
  }

  async customer(name: string, attributes: Record<string, string | number | boolean> = {}): Promise<void> {
    this.customerId = this.key(name);
    await this.call('PUT', `/v1/customers/${this.customerId}`, { name, attributes });
  }

  async subscribe(plan: string, options: SubscribeOptions = {}): Promise<Body> {
    const sub = await this.call('POST', `/v1/customers/${this.customerId}/subscriptions`, {
      plan: this.key(plan),
      ...options,
    });
    this.subscriptions.set(plan, sub.id as string);
    return sub;
  }

  async override(feature: string, effect: Body, extra: Body = {}): Promise<Body> {
    return this.call('POST', `/v1/customers/${this.customerId}/overrides`, {
      feature: this.key(feature),
      reason: 'scenario',
      ...effect,
      ...extra,
    });
  }

  async grant(feature: string, amount: number, extra: Body = {}): Promise<Body> {
    return this.call('POST', `/v1/customers/${this.customerId}/grants`, {
      feature: this.key(feature),
      amount,
      reason: 'scenario',
      ...extra,
    });
  }

  /** The decision for one feature now. */
  async check(feature: string, options: { quantity?: number; context?: Body } = {}): Promise<Body> {
    return this.call('POST', '/v1/check', {
      customer_id: this.customerId,
      feature: this.key(feature),
      ...options,
    });
  }

  async allowed(feature: string, context?: Body): Promise<boolean> {
    return (await this.check(feature, context ? { context } : {})).allowed as boolean;
  }

  /** One entry of GET /v1/customers/{id}/entitlements, or undefined when the customer has nothing for it. */
  async entitlement(feature: string): Promise<Body | undefined> {
    const body = await this.call<{ entitlements: Body[] }>(
      'GET',
      `/v1/customers/${this.customerId}/entitlements`,
    );
    return body.entitlements.find((e) => e.feature === this.key(feature));
  }

  subscriptionId(plan?: string): string {
    const id = plan ? this.subscriptions.get(plan) : [...this.subscriptions.values()][0];
    if (!id) throw new Error(`no subscription ${plan ?? ''} in this scenario`);
    return id;
  }

  async subscription(plan?: string): Promise<Body> {
    return this.call('GET', `/v1/subscriptions/${this.subscriptionId(plan)}`);
  }

  /** POST /v1/subscriptions/{id}/{verb}; returns the status and body, whatever they are. */
  async command(verb: string, body?: Body, plan?: string) {
    return this.app.json<Body>('POST', `/v1/subscriptions/${this.subscriptionId(plan)}/${verb}`, body);
  }

  async change(plan: string, timing: 'immediate' | 'period_end', of?: string): Promise<Body> {
    const res = await this.command('change', { plan: this.key(plan), timing }, of);
    if (res.status !== 200) throw new HttpError(`change answered ${res.status}: ${JSON.stringify(res.body)}`);
    return res.body;
  }

  get clock(): ManualClock {
    if (!(this.app.clock instanceof ManualClock))
      throw new Error('scenarios that move time need frozenClock()');
    return this.app.clock;
  }

  now(): Date {
    return this.app.clock.now();
  }

  advance(ms: number): void {
    this.clock.advance(ms);
  }

  /** Moves the clock to an instant (an ISO string or Date), e.g. a subscription's current_period_end. */
  at(instant: string | Date): void {
    this.clock.set(instant);
  }
}

/** The fluent front: queues steps, runs them in order when awaited, resolves to the Scenario. */
export class ScenarioBuilder implements PromiseLike<Scenario> {
  private readonly steps: Array<(s: Scenario) => Promise<unknown>> = [];
  private readonly target: Scenario;

  constructor(app: TestApp) {
    this.target = new Scenario(app);
  }

  private step(fn: (s: Scenario) => Promise<unknown>): this {
    this.steps.push(fn);
    return this;
  }

  feature(name: string, type: FeatureType, extra?: Body) {
    return this.step((s) => s.feature(name, type, extra));
  }
  plan(name: string, entitlements: EntitlementSpec[], options?: PlanOptions) {
    return this.step((s) => s.plan(name, entitlements, options));
  }
  addon(name: string, entitlements: EntitlementSpec[]) {
    return this.step((s) => s.plan(name, entitlements, { addon: true }));
  }
  settings(patch: Body) {
    return this.step((s) => s.settings(patch));
  }
  customer(name: string, attributes?: Record<string, string | number | boolean>) {
    return this.step((s) => s.customer(name, attributes));
  }
  onPlan(plan: string, options?: SubscribeOptions) {
    return this.step((s) => s.subscribe(plan, options));
  }
  withOverride(feature: string, effect: Body, extra?: Body) {
    return this.step((s) => s.override(feature, effect, extra));
  }
  withGrant(feature: string, amount: number, extra?: Body) {
    return this.step((s) => s.grant(feature, amount, extra));
  }

  // biome-ignore lint/suspicious/noThenProperty: awaiting the builder runs the scenario, by design
  then<R1 = Scenario, R2 = never>(
    onFulfilled?: ((value: Scenario) => R1 | PromiseLike<R1>) | null,
    onRejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): PromiseLike<R1 | R2> {
    const run = async () => {
      for (const step of this.steps) await step(this.target);
      return this.target;
    };
    return run().then(onFulfilled, onRejected);
  }
}

export function scenario(app: TestApp): ScenarioBuilder {
  return new ScenarioBuilder(app);
}
