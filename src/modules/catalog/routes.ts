import type { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../../platform/http.ts';
import { registerFeatureRoutes } from './feature-routes.ts';
import { registerPlanRoutes } from './plan-routes.ts';

/** The catalog: features (what can be granted) and plans (versioned bundles of entitlements). */
export function registerCatalogRoutes(app: OpenAPIHono<AppEnv>): void {
  registerFeatureRoutes(app);
  registerPlanRoutes(app);
}
