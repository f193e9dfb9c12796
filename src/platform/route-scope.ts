import type { MiddlewareHandler } from 'hono';
import { requireScope, type Scope } from './context.ts';
import type { AppEnv } from './http.ts';

export interface ScopedRoute {
  method: string;
  /** The OpenAPI path: `/v1/customers/{customer_id}`. */
  path: string;
}

interface CompiledRoute {
  pattern: RegExp;
  params: number;
  scope: Scope;
}

/**
 * Checks the scope of the route a request is for right after authentication, before idempotency
 * and before the body or query is validated: a key without the scope learns nothing about what
 * the route accepts. The routes are read on the first request (they are registered after this
 * middleware); a path that matches none passes on, to be answered 404. The service verbs check
 * their scope again (defence in depth).
 */
export function requireRouteScope(
  routes: () => Iterable<ScopedRoute>,
  scopeOf: (route: ScopedRoute) => Scope,
): MiddlewareHandler<AppEnv> {
  let byMethod: Map<string, CompiledRoute[]> | null = null;
  const compile = () => {
    const out = new Map<string, CompiledRoute[]>();
    for (const route of routes()) {
      const method = route.method.toUpperCase();
      const source = route.path
        .split('/')
        .map((part) => (/^\{\w+\}$/.test(part) ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
        .join('/');
      const list = out.get(method) ?? [];
      list.push({
        pattern: new RegExp(`^${source}$`),
        params: (route.path.match(/\{/g) ?? []).length,
        scope: scopeOf(route),
      });
      out.set(method, list);
    }
    // A literal segment wins over a parameter (`/audit-events/export` before `/audit-events/{id}`).
    for (const list of out.values()) list.sort((a, b) => a.params - b.params);
    return out;
  };
  return async (c, next) => {
    const ctx = c.get('ctx');
    if (ctx) {
      byMethod ??= compile();
      const path = c.req.path;
      const route = byMethod.get(c.req.method)?.find((r) => r.pattern.test(path));
      if (route) requireScope(ctx, route.scope);
    }
    await next();
  };
}
