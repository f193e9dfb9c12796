import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { type AppEnv, ctxOf, errorResponses, jsonBody, jsonContent, security } from '../../platform/http.ts';
import { commitReservation, createReservation, getReservation, releaseReservation } from './reservations.ts';
import { CommitReservationBody, CreateReservationBody, ReservationSchema } from './schema.ts';

const tags = ['Usage'];
const IdParam = z.object({ id: z.string().min(1).max(100) });

export function registerReservationRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/reservations',
      tags,
      security,
      summary: 'Hold an amount of a metered feature until it is committed, released or expires',
      description:
        'A held amount counts as used for every check and every other consumer. 409 `limit_exceeded` when it does not fit.',
      request: jsonBody(CreateReservationBody),
      responses: { 201: jsonContent(ReservationSchema, 'The reservation'), ...errorResponses(409, 422) },
    }),
    async (c) => c.json(await createReservation(ctxOf(c), c.req.valid('json')), 201),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/reservations/{id}',
      tags,
      security,
      summary: 'A reservation',
      request: { params: IdParam },
      responses: { 200: jsonContent(ReservationSchema, 'The reservation'), ...errorResponses(404) },
    }),
    async (c) => c.json(await getReservation(ctxOf(c), c.req.valid('param').id), 200),
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/reservations/{id}/commit',
      tags,
      security,
      summary: 'Count what was used (default: all of it) and release the rest',
      request: {
        params: IdParam,
        body: { content: { 'application/json': { schema: CommitReservationBody } }, required: false },
      },
      responses: {
        200: jsonContent(ReservationSchema, 'The committed reservation'),
        ...errorResponses(404, 409, 422),
      },
    }),
    async (c) => {
      const body = c.req.valid('json') as { amount?: number } | undefined;
      return c.json(await commitReservation(ctxOf(c), c.req.valid('param').id, body?.amount), 200);
    },
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/reservations/{id}/release',
      tags,
      security,
      summary: 'Release a held amount without using it',
      request: { params: IdParam },
      responses: {
        200: jsonContent(ReservationSchema, 'The released reservation'),
        ...errorResponses(404, 409),
      },
    }),
    async (c) => c.json(await releaseReservation(ctxOf(c), c.req.valid('param').id), 200),
  );
}
