import type { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../../platform/http.ts';

export function registerCatalogRoutes(_app: OpenAPIHono<AppEnv>): void {}
