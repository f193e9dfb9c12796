import type { Scope } from './platform/context.ts';
import type { ScopedRoute } from './platform/route-scope.ts';

/**
 * The one list of what a `check`-scoped key (a product backend) may call. Every other
 * authenticated route needs `admin`. A route added here must also accept `check` in its service
 * verb, which checks the scope again.
 */
const CHECK_SCOPE_ROUTES: ReadonlySet<string> = new Set([
  'POST /v1/check',
  'GET /v1/customers/{customer_id}/entitlements',
  'POST /v1/customers/{customer_id}/token',
  'POST /v1/usage',
  'POST /v1/usage/batch',
  'POST /v1/reservations',
  'GET /v1/reservations/{id}',
  'POST /v1/reservations/{id}/commit',
  'POST /v1/reservations/{id}/release',
]);

export function scopeOfRoute(route: ScopedRoute): Scope {
  return CHECK_SCOPE_ROUTES.has(`${route.method.toUpperCase()} ${route.path}`) ? 'check' : 'admin';
}
