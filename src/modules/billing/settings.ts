import Stripe from 'stripe';
import type { AppDeps, Ctx } from '../../platform/context.ts';
import { reader, requireScope, withTransaction } from '../../platform/context.ts';
import type { Executor } from '../../platform/db.ts';
import { Unprocessable } from '../../platform/errors.ts';
import { SecretBox } from '../../platform/secret-box.ts';

export type LifecycleOwner = 'stripe' | 'tessera';

/** What the API shows of an environment's Stripe connection: never a secret, only whether it is set. */
export interface StripeSettingsView {
  secret_key_set: boolean;
  /** e.g. `sk_test_…4242`: which key is set. */
  secret_key_hint: string | null;
  webhook_secret_set: boolean;
  lifecycle_owner: LifecycleOwner;
  updated_at: string | null;
}

/** The connection with its secrets opened, for the code that talks to Stripe. */
export interface StripeConnection {
  environment: string;
  secretKey: string | null;
  webhookSecret: string | null;
  lifecycleOwner: LifecycleOwner;
}

export interface StripeSettingsInput {
  secret_key?: string | null | undefined;
  webhook_secret: string;
  lifecycle_owner?: LifecycleOwner | undefined;
}

const PURPOSE = 'stripe settings';
const NOT_SET: StripeSettingsView = {
  secret_key_set: false,
  secret_key_hint: null,
  webhook_secret_set: false,
  lifecycle_owner: 'stripe',
  updated_at: null,
};

export function stripeSecretBox(deps: Pick<AppDeps, 'secrets'>): SecretBox {
  return new SecretBox(deps.secrets, PURPOSE);
}

export async function getStripeSettings(ctx: Ctx): Promise<StripeSettingsView> {
  requireScope(ctx, 'admin');
  const row = await reader(ctx)
    .selectFrom('stripe_settings')
    .selectAll()
    .where('environment', '=', ctx.environment)
    .executeTakeFirst();
  if (!row) return NOT_SET;
  return {
    secret_key_set: row.secret_key !== null,
    secret_key_hint: row.secret_key_hint,
    webhook_secret_set: row.webhook_secret !== null,
    lifecycle_owner: row.lifecycle_owner,
    updated_at: row.updated_at.toISOString(),
  };
}

/**
 * `PUT /v1/stripe/settings`: the secrets are sealed before they reach the database, the audit
 * record says which changed but never holds them, and a secret key of the other mode than the
 * environment's (a live key in `test`) is refused. An omitted `secret_key` keeps the one stored;
 * null removes it.
 */
export async function putStripeSettings(ctx: Ctx, input: StripeSettingsInput): Promise<StripeSettingsView> {
  requireScope(ctx, 'admin');
  const key = input.secret_key;
  if (
    typeof key === 'string' &&
    !key.startsWith(`sk_${ctx.environment}_`) &&
    !key.startsWith(`rk_${ctx.environment}_`)
  ) {
    throw new Unprocessable('stripe_key_mode', `The secret key is not a ${ctx.environment}-mode Stripe key`, [
      {
        path: 'secret_key',
        message: `must be an sk_${ctx.environment}_ or rk_${ctx.environment}_ key in this environment`,
      },
    ]);
  }
  const box = stripeSecretBox(ctx.deps);
  await withTransaction(ctx, async (t) => {
    const before = await t.tx
      .selectFrom('stripe_settings')
      .selectAll()
      .where('environment', '=', ctx.environment)
      .forUpdate()
      .executeTakeFirst();
    const secretKey =
      key === undefined ? (before?.secret_key ?? null) : key === null ? null : box.seal(key, ctx.environment);
    const hint =
      key === undefined
        ? (before?.secret_key_hint ?? null)
        : key === null
          ? null
          : `${key.slice(0, 8)}…${key.slice(-4)}`;
    const row = {
      environment: ctx.environment,
      secret_key: secretKey,
      secret_key_hint: hint,
      webhook_secret: box.seal(input.webhook_secret, ctx.environment),
      lifecycle_owner: input.lifecycle_owner ?? before?.lifecycle_owner ?? ('stripe' as const),
      updated_at: t.now,
    };
    await t.tx
      .insertInto('stripe_settings')
      .values({ ...row, created_at: t.now })
      .onConflict((oc) => oc.column('environment').doUpdateSet(row))
      .execute();
    t.audit({
      action: 'stripe.settings_updated',
      target: { type: 'environment', id: ctx.environment },
      before: before
        ? { secret_key_hint: before.secret_key_hint, lifecycle_owner: before.lifecycle_owner }
        : null,
      after: {
        secret_key_hint: hint,
        lifecycle_owner: row.lifecycle_owner,
        secret_key_changed: key !== undefined,
        webhook_secret_changed: true,
      },
    });
  });
  return getStripeSettings(ctx);
}

/** The environment's connection with its secrets opened, or null when Stripe is not set up there. */
export async function stripeConnection(
  deps: Pick<AppDeps, 'secrets'>,
  db: Executor,
  environment: string,
): Promise<StripeConnection | null> {
  const row = await db
    .selectFrom('stripe_settings')
    .selectAll()
    .where('environment', '=', environment)
    .executeTakeFirst();
  if (!row) return null;
  const box = stripeSecretBox(deps);
  return {
    environment,
    secretKey: row.secret_key === null ? null : box.open(row.secret_key, environment),
    webhookSecret: row.webhook_secret === null ? null : box.open(row.webhook_secret, environment),
    lifecycleOwner: row.lifecycle_owner,
  };
}

/**
 * A Stripe client for one secret key, on the API version the installed `stripe` package pins
 * (`Stripe.API_VERSION`), pointed at `STRIPE_API_BASE` when it is set (a local server in tests).
 */
export function stripeClient(secretKey: string, apiBase: string | undefined): Stripe {
  const options: Stripe.StripeConfig = {
    apiVersion: Stripe.API_VERSION as Stripe.StripeConfig['apiVersion'],
    maxNetworkRetries: 2,
    timeout: 20_000,
    appInfo: { name: 'Tessera' },
  };
  if (apiBase) {
    const url = new URL(apiBase);
    options.host = url.hostname;
    options.port = url.port || (url.protocol === 'https:' ? '443' : '80');
    options.protocol = url.protocol === 'http:' ? 'http' : 'https';
  }
  return new Stripe(secretKey, options);
}
