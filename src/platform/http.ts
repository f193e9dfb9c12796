import { OpenAPIHono, z } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { AppDeps, Ctx } from './context.ts';
import { type FieldError, ValidationFailed } from './errors.ts';
import { enforceUrlRule } from './input-rules.ts';

export interface AppEnv {
  Variables: {
    requestId: string;
    deps: AppDeps;
    ctx: Ctx;
  };
}

export type AppContext = Context<AppEnv>;

/** Turns zod issues into field errors: `entitlements[0].limit`, `query.cursor`, unknown keys by name. */
export function fieldErrors(issues: readonly z.core.$ZodIssue[], prefix?: string): FieldError[] {
  const out: FieldError[] = [];
  for (const issue of issues) {
    const base = issue.path.map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`)).join('');
    const join = (s: string) => {
      const joined = `${prefix ?? ''}${s}`.replace(/^\./, '');
      return joined === '' ? '(body)' : joined;
    };
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: join(`${base}.${key}`), message: 'unknown field' });
    } else {
      out.push({ path: join(base), message: issue.message });
    }
  }
  return out;
}

const TARGET_PREFIX: Record<string, string> = { json: '', query: 'query', param: 'path', header: 'header' };

/**
 * A router whose validation failures become problem+json naming every bad field. Path parameters
 * and query values also pass the input rule (src/platform/input-rules.ts) here, where their names
 * are known; JSON bodies pass it as they are read (`jsonBodyRule`).
 */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result, c) => {
      if (!result.success) {
        const prefix = TARGET_PREFIX[result.target] ?? '';
        throw new ValidationFailed(fieldErrors(result.error.issues, prefix));
      }
      if (result.target === 'param' || result.target === 'query')
        enforceUrlRule(result.target, result.data as Record<string, unknown>, c.req.routePath, c.req.url);
    },
  });
}

export function ctxOf(c: AppContext): Ctx {
  return c.get('ctx');
}

/** `limit` and `cursor` for every list endpoint. */
export const ListQuery = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(200)
    .default(50)
    .openapi({ description: 'Page size (1-200)', example: 50 }),
  cursor: z.string().max(512).optional().openapi({ description: 'Opaque cursor from a previous page' }),
});

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    code: z
      .string()
      .openapi({ description: 'Stable machine-readable error code', example: 'validation_failed' }),
    request_id: z.string(),
    errors: z.array(z.object({ path: z.string(), message: z.string() })).optional(),
  })
  .openapi('Problem');

const problemContent = { 'application/problem+json': { schema: ProblemSchema } };

/** Error responses every authenticated route may give, for the OpenAPI document. */
export function errorResponses(...statuses: number[]) {
  const descriptions: Record<number, string> = {
    400: 'Invalid input; `errors` names each bad field',
    401: 'Missing or invalid API key',
    403: 'The API key lacks the required scope',
    404: 'Not found in this environment',
    409: 'Conflicts with the current state',
    413: 'Body larger than the server’s limit (TESSERA_MAX_BODY_BYTES, 1 MiB by default)',
    429: 'Over the API key’s rate limit (`rate_limited`, with `Retry-After`) or, from an address with too many failed authentications, `too_many_auth_failures`',
    422: 'Well-formed but not acceptable (or an Idempotency-Key reused with another body)',
    502: 'Stripe refused or failed; nothing changed',
  };
  const all = [400, 401, 403, 413, 429, ...statuses];
  return Object.fromEntries(
    [...new Set(all)].map((s) => [s, { description: descriptions[s] ?? 'Error', content: problemContent }]),
  );
}

export const jsonContent = <T extends z.ZodType>(schema: T, description: string) => ({
  content: { 'application/json': { schema } },
  description,
});

export const jsonBody = <T extends z.ZodType>(schema: T) => ({
  body: { content: { 'application/json': { schema } }, required: true },
});

export const security = [{ bearerAuth: [] }];
