import type { Context, MiddlewareHandler } from 'hono';
import type { Tessera } from './client.ts';
import type { Decision } from './types.ts';

export interface RequireFeatureSetup {
  tessera: Tessera;
  /** Who the request is for: the Tessera customer id (e.g. from the session or a header). */
  customerId: (c: Context) => string | undefined | Promise<string | undefined>;
}

export interface RequireFeatureOptions {
  quantity?: number;
}

/**
 * Returns `requireFeature(feature, { quantity? })`, a Hono middleware that lets a request through
 * when Tessera allows the feature for its customer and answers 403 problem+json otherwise. The
 * decision is put on the context as `tesseraDecision`.
 */
export function createRequireFeature(setup: RequireFeatureSetup) {
  return function requireFeature(feature: string, options: RequireFeatureOptions = {}): MiddlewareHandler {
    return async (c, next) => {
      const customerId = await setup.customerId(c);
      if (!customerId) return problem(c, 401, 'customer_required', 'No customer for this request', feature);
      const decision = await setup.tessera.check({
        customer_id: customerId,
        feature,
        ...(options.quantity !== undefined ? { quantity: options.quantity } : {}),
      });
      c.set('tesseraDecision' as never, decision as never);
      if (!decision.allowed) {
        return problem(
          c,
          403,
          'feature_not_allowed',
          `Feature '${feature}' is not available`,
          feature,
          decision,
        );
      }
      await next();
    };
  };
}

function problem(
  c: Context,
  status: 401 | 403,
  code: string,
  title: string,
  feature: string,
  decision?: Decision,
) {
  const body = {
    type: `https://tessera.dev/problems/${code.replace(/_/g, '-')}`,
    title,
    status,
    detail: decision ? `${title}: ${decision.reason}` : title,
    code,
    feature,
    ...(decision ? { reason: decision.reason, stale: decision.stale } : {}),
  };
  return c.body(JSON.stringify(body), status, { 'content-type': 'application/problem+json' });
}
