import { HTTPException } from 'hono/http-exception';
import { sql } from 'kysely';
import { registerApiKeyRoutes } from './modules/api-keys/routes.ts';
import { registerAuditRoutes } from './modules/audit/routes.ts';
import { registerBillingRoutes } from './modules/billing/routes.ts';
import { registerCatalogRoutes } from './modules/catalog/routes.ts';
import { registerCustomerRoutes } from './modules/customers/routes.ts';
import { registerEntitlementRoutes } from './modules/entitlements/routes.ts';
import { registerReviewRoutes } from './modules/governance/review-routes.ts';
import { registerGovernanceRoutes } from './modules/governance/routes.ts';
import { registerMeteringRoutes } from './modules/metering/routes.ts';
import { registerOverrideRoutes } from './modules/overrides/routes.ts';
import { registerSettingsRoutes } from './modules/settings/routes.ts';
import { registerSubscriptionRoutes } from './modules/subscriptions/routes.ts';
import { registerJwksRoute, registerTokenRoutes } from './modules/tokens/routes.ts';
import { registerWebhookRoutes } from './modules/webhooks/routes.ts';
import { ApiKeyResolver, authenticate } from './platform/auth.ts';
import { AuthBrake } from './platform/auth-brake.ts';
import type { AppDeps } from './platform/context.ts';
import { renderDocsPage } from './platform/docs-page.ts';
import { AppError, BadRequest, problem, problemFor, TryAgainLater, Unauthorized } from './platform/errors.ts';
import { type AppEnv, createRouter } from './platform/http.ts';
import { idempotency } from './platform/idempotency.ts';
import { jsonBodyRule } from './platform/input-rules.ts';
import { RateLimiter } from './platform/rate-limit.ts';
import { requestEdge } from './platform/request-edge.ts';
import { bearerMatches, corsFor, DOCS_PAGE_CSP } from './platform/response-headers.ts';
import { requireRouteScope } from './platform/route-scope.ts';
import { asUnavailable } from './platform/unavailable.ts';
import { scopeOfRoute } from './route-scopes.ts';

/** Builds the HTTP app from the modules. No IO happens here: everything arrives in `deps`. */
export function createApp(deps: AppDeps) {
  const app = createRouter();
  const { config } = deps;
  const resolver = new ApiKeyResolver(deps.db, config.apiKeyCacheSeconds, {
    clock: deps.clock,
    defaultRateLimit: config.rateLimitDefault,
  });
  const rateLimiter = new RateLimiter(deps.clock);
  const authBrake = new AuthBrake(deps.clock, config.authFailureLimit, config.authFailureWindowSeconds);
  // This node forgets a revoked key at once; other nodes within their cache time (at most 5 s).
  deps.commitListeners.push(({ topics }) => {
    if (topics.includes('api_key.revoked') || topics.includes('api_key.updated')) resolver.forget();
  });

  app.use('*', requestEdge(deps));
  // Before authentication, so a browser's preflight (which carries no key) is answered.
  if (config.corsOrigins.length > 0) app.use('*', corsFor(config.corsOrigins));

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  app.get('/readyz', async (c) => {
    const checks: Record<string, 'ok' | 'down' | 'not_configured'> = {
      database: 'ok',
      redis: 'not_configured',
    };
    try {
      await sql`select 1`.execute(deps.db);
    } catch {
      checks.database = 'down';
    }
    if (deps.redis) {
      try {
        await deps.redis.ping();
        checks.redis = 'ok';
      } catch {
        checks.redis = 'down';
      }
    }
    const ready = !Object.values(checks).includes('down');
    return c.json({ status: ready ? 'ready' : 'not_ready', checks }, ready ? 200 : 503);
  });
  app.get('/metrics', async (c) => {
    if (
      config.metricsToken !== undefined &&
      !bearerMatches(c.req.header('authorization'), config.metricsToken)
    )
      throw new Unauthorized('Send the metrics token as `Authorization: Bearer <token>`');
    c.header('content-type', deps.metrics.registry.contentType);
    return c.body(await deps.metrics.registry.metrics());
  });

  registerJwksRoute(app, deps);

  // Authentication, then the route's scope, then idempotency, then (in each route) validation.
  const requireKey = authenticate(resolver, {
    brake: authBrake,
    trustProxy: config.trustProxy,
    limiter: rateLimiter,
  });
  app.use('/v1/*', async (c, next) => {
    if (c.req.path.startsWith('/v1/webhooks/')) return next();
    return requireKey(c, next);
  });
  app.use(
    '/v1/*',
    requireRouteScope(
      () =>
        app.openAPIRegistry.definitions.flatMap((d) =>
          d.type === 'route' ? [{ method: d.route.method, path: d.route.path }] : [],
        ),
      scopeOfRoute,
    ),
  );
  app.use('/v1/*', jsonBodyRule());
  app.use('/v1/*', idempotency(config.idempotencyTtlSeconds));

  registerApiKeyRoutes(app);
  registerCatalogRoutes(app);
  registerCustomerRoutes(app);
  registerEntitlementRoutes(app);
  registerMeteringRoutes(app);
  registerOverrideRoutes(app);
  registerSettingsRoutes(app);
  registerBillingRoutes(app);
  registerSubscriptionRoutes(app);
  registerAuditRoutes(app);
  registerGovernanceRoutes(app);
  registerReviewRoutes(app);
  registerTokenRoutes(app);
  registerWebhookRoutes(app);

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', {
    type: 'http',
    scheme: 'bearer',
    description: 'An API key: `sk_test_…` or `sk_live_…`',
  });
  const documentConfig = {
    openapi: '3.1.0',
    info: {
      title: 'Tessera',
      version: '0.1.0',
      description:
        'Self-hosted entitlement engine: plans, add-ons, trials, quotas, overrides and credits; real-time decisions; a tamper-evident audit log.',
    },
  };
  let cachedDocument: ReturnType<typeof app.getOpenAPI31Document> | null = null;
  const openApiDocument = () => {
    cachedDocument ??= app.getOpenAPI31Document(documentConfig);
    return cachedDocument;
  };
  app.get('/openapi.json', (c) => c.json(openApiDocument()));
  app.get('/docs', (c) => {
    c.header('content-security-policy', DOCS_PAGE_CSP);
    return c.html(renderDocsPage(openApiDocument() as unknown as Parameters<typeof renderDocsPage>[0]));
  });

  app.notFound((c) =>
    c.json(
      problem(
        404,
        'route_not_found',
        `No route ${c.req.method} ${c.req.path}`,
        c.get('requestId') ?? 'unknown',
      ),
      404,
      {
        'content-type': 'application/problem+json',
      },
    ),
  );

  let lastUnavailableLog = 0;
  app.onError((thrown, c) => {
    const requestId = c.get('requestId') ?? 'unknown';
    // PostgreSQL or Redis out of reach: 503 with Retry-After, not a 500 (platform/unavailable.ts).
    const unavailable = thrown instanceof AppError ? null : asUnavailable(thrown);
    const err = unavailable ?? thrown;
    let body = problemFor(err, requestId);
    if (err instanceof HTTPException) {
      const malformed = /malformed json/i.test(err.message);
      body = malformed
        ? problemFor(
            new BadRequest('malformed_json', 'The body is not valid JSON', [
              { path: '(body)', message: 'not valid JSON' },
            ]),
            requestId,
          )
        : problem(err.status, 'http_error', err.message || 'Request failed', requestId);
    }
    // Not logged per request: what makes it (a rebuild, say) logs once; an outage every 10 s.
    if (unavailable && Date.now() - lastUnavailableLog > 10_000) {
      lastUnavailableLog = Date.now();
      deps.logger.warn({ err: thrown, requestId }, `answering 503: ${unavailable.message}`);
    }
    if (err instanceof TryAgainLater) {
      return c.json(body, 503, {
        'content-type': 'application/problem+json',
        'retry-after': String(err.retryAfterSeconds),
      });
    }
    if (body.status >= 500) deps.logger.error({ err, requestId }, 'unhandled error');
    return c.json(body, body.status as 400, { 'content-type': 'application/problem+json' });
  });

  return { app, resolver, authBrake, rateLimiter };
}

export type TesseraApp = ReturnType<typeof createApp>['app'];
export type { AppEnv };
