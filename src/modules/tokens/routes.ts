import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import type { AppDeps } from '../../platform/context.ts';
import { type AppEnv, ctxOf, errorResponses, jsonContent, security } from '../../platform/http.ts';
import { CustomerIdParam } from '../customers/schema.ts';
import { MAX_TOKEN_TTL_SECONDS } from './keys.ts';
import { DEFAULT_TOKEN_TTL_SECONDS, issueToken, jwks, rotateSigningKey } from './service.ts';

const IssueTokenBody = z
  .strictObject({
    ttl_seconds: z
      .number()
      .int()
      .min(1)
      .max(MAX_TOKEN_TTL_SECONDS)
      .optional()
      .openapi({
        description: `Seconds the token lives: default ${DEFAULT_TOKEN_TTL_SECONDS}, at most 3600`,
      }),
  })
  .openapi('IssueToken');

const TokenSchema = z
  .object({
    token: z.string().openapi({ description: 'A compact JWS (EdDSA, `kid` in the header)' }),
    expires_at: z.string().openapi({ example: '2026-12-07T12:05:00.000Z' }),
  })
  .openapi('EntitlementToken');

const RotationSchema = z
  .object({
    kid: z.string().openapi({ description: 'The new active key' }),
    retired_kid: z.string().nullable(),
    retired_key_leaves_jwks_at: z
      .string()
      .nullable()
      .openapi({ description: 'When every token the retired key signed has expired' }),
  })
  .openapi('SigningKeyRotation');

export function registerTokenRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/customers/{customer_id}/token',
      tags: ['Tokens'],
      security,
      summary: 'A signed token of the customer’s entitlements, for checks at the edge without a round trip',
      description:
        'Claims: `iss`, `sub` (customer id), `aud` (environment), `iat`, `exp`, `ver` (entitlement version) and `ent` (feature key -> `true`, a config value, or `{limit, remaining, resets_at}` as of issue time). Verify with `/.well-known/jwks.json`.',
      request: {
        params: CustomerIdParam,
        body: { content: { 'application/json': { schema: IssueTokenBody } }, required: false },
      },
      responses: { 200: jsonContent(TokenSchema, 'The token'), ...errorResponses(404) },
    }),
    async (c) => {
      const body = c.req.valid('json') as { ttl_seconds?: number } | undefined;
      // A bearer credential for edge checks: no cache may keep it.
      c.header('cache-control', 'no-store');
      return c.json(await issueToken(ctxOf(c), c.req.valid('param').customer_id, body ?? {}), 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/signing-keys/rotate',
      tags: ['Tokens'],
      security,
      summary: 'Make a new active signing key; the old one stays in the JWKS until its tokens expire',
      responses: { 200: jsonContent(RotationSchema, 'The rotation'), ...errorResponses() },
    }),
    async (c) => c.json(await rotateSigningKey(ctxOf(c)), 200),
  );
}

/**
 * `GET /.well-known/jwks.json`, public: registered before authentication, as a plain route. A
 * verifier caches it for five minutes and refetches when it meets an unknown `kid`.
 */
export function registerJwksRoute(app: OpenAPIHono<AppEnv>, deps: AppDeps): void {
  app.get('/.well-known/jwks.json', async (c) => {
    c.header('cache-control', 'public, max-age=300');
    return c.json(await jwks(deps));
  });
}
