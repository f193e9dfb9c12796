import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { AppDeps } from './context.ts';
import { PayloadTooLarge, problem } from './errors.ts';
import type { AppEnv } from './http.ts';
import { requestIdFactory } from './ids.ts';
import { API_HEADERS, hstsHeader, NOSNIFF } from './response-headers.ts';

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const JSON_TYPE = /^application\/([\w.-]+\+)?json\s*(;|$)/i;
/** JSON is UTF-8 (RFC 8259): a charset parameter naming anything else is refused, not misread. */
const OTHER_CHARSET = /;\s*charset\s*=\s*"?(?!utf-?8\b)/i;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

/**
 * Everything every request needs, in one middleware because each layer costs on the hot path:
 * request id, body size and type checks, metrics and the error log line. It never touches
 * `c.req.raw.body` (that builds a full Request) unless the body is chunked.
 */
export function requestEdge(deps: AppDeps): MiddlewareHandler<AppEnv> {
  const nextRequestId = requestIdFactory();
  const maxBody = deps.config.maxBodyBytes;
  const maxQuery = deps.config.maxQueryLength;
  const hsts = hstsHeader(deps.config.hstsSeconds);
  const tooLarge = () => new PayloadTooLarge(`The body is larger than ${maxBody} bytes`);
  const chunkedLimit = bodyLimit({
    maxSize: maxBody,
    onError: () => {
      throw tooLarge();
    },
  });
  const { metrics, logger } = deps;
  const children = new Map<string, { count: (status: number) => void; time: (seconds: number) => void }>();
  const seriesFor = (method: string, route: string) => {
    const key = `${method} ${route}`;
    let series = children.get(key);
    if (!series) {
      const histogram = metrics.httpDuration.labels({ method, route });
      series = {
        count: (status) => metrics.httpRequests.inc({ method, route, status: String(status) }),
        time: (seconds) => histogram.observe(seconds),
      };
      children.set(key, series);
    }
    return series;
  };

  return async (c, next) => {
    const incoming = c.req.header('x-request-id');
    const requestId = incoming && REQUEST_ID.test(incoming) ? incoming : nextRequestId();
    c.set('requestId', requestId);
    c.set('deps', deps);
    // Set before the response exists: headers added afterwards force a slow Response rebuild.
    c.header('x-request-id', requestId);
    c.header(NOSNIFF.name, NOSNIFF.value);
    for (const [name, value] of API_HEADERS) c.header(name, value);
    if (hsts !== null) c.header(hsts.name, hsts.value);
    const started = performance.now();
    const method = c.req.method;
    const url = c.req.url;
    const query = url.indexOf('?');
    if (query !== -1 && url.length - query - 1 > maxQuery) {
      return c.json(
        problem(414, 'uri_too_long', `The query string is longer than ${maxQuery} characters`, requestId),
        414,
        { 'content-type': 'application/problem+json' },
      );
    }

    if (BODY_METHODS.has(method)) {
      const length = c.req.header('content-length');
      const chunked = c.req.header('transfer-encoding') !== undefined;
      if (length !== undefined && Number(length) > maxBody) throw tooLarge();
      // A body that is not JSON would otherwise validate as `{}` and produce confusing errors.
      const hasBody = chunked || (length !== undefined && length !== '0');
      const type = c.req.header('content-type');
      if (
        hasBody &&
        !c.req.path.startsWith('/v1/webhooks/') &&
        (!type || !JSON_TYPE.test(type) || OTHER_CHARSET.test(type))
      ) {
        return c.json(
          problem(415, 'unsupported_media_type', 'Send the body as application/json in UTF-8', requestId),
          415,
          {
            'content-type': 'application/problem+json',
          },
        );
      }
      if (chunked) await chunkedLimit(c, next);
      else await next();
    } else {
      await next();
    }

    const status = c.res.status;
    const seconds = (performance.now() - started) / 1000;
    const series = seriesFor(method, c.req.routePath);
    series.count(status);
    series.time(seconds);
    if (status >= 500) logger.error({ requestId, method, path: c.req.path, status }, 'request failed');
    else if (logger.isLevelEnabled('debug')) {
      logger.debug({ requestId, method, path: c.req.path, status, ms: seconds * 1000 }, 'request');
    }
  };
}
