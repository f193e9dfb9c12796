import { createRoute, type OpenAPIHono } from '@hono/zod-openapi';
import {
  type AppEnv,
  ctxOf,
  errorResponses,
  jsonBody,
  jsonContent,
  ListQuery,
  security,
} from '../../platform/http.ts';
import {
  changeSubscriptionDirect,
  createSubscriptionDirect,
  requestLocation,
} from '../governance/direct-changes.ts';
import { AccessRequestSchema } from '../governance/request-schema.ts';
import {
  cancelScheduledChange,
  cancelSubscription,
  convertTrial,
  pauseSubscription,
  recordPaymentFailed,
  recordPaymentRecovered,
  resumeSubscription,
  undoCancelAtPeriodEnd,
  updateQuantity,
} from './commands.ts';
import { registerPlanMigrationRoutes } from './migrate-routes.ts';
import {
  CancelSubscriptionBody,
  ChangeSubscriptionBody,
  CreateSubscriptionBody,
  CustomerParam,
  SubscriptionPage,
  SubscriptionParam,
  SubscriptionSchema,
  UpdateSubscriptionBody,
} from './schema.ts';
import { getSubscription, listSubscriptions } from './service.ts';

const tags = ['Subscriptions'];
const one = (description: string) => ({ 200: jsonContent(SubscriptionSchema, description) });

/** Commands without a body: POST /v1/subscriptions/{id}/<verb>. */
const VERBS = [
  ['pause', 'Pause (access stops; periods keep rolling)', pauseSubscription],
  ['resume', 'Resume a paused subscription', resumeSubscription],
  [
    'payment-failed',
    'Record a failed payment: past_due, with full access during the grace period',
    recordPaymentFailed,
  ],
  ['payment-recovered', 'Record a recovered payment: active again', recordPaymentRecovered],
  ['convert', 'End the trial now and start paying (the billing anchor moves to now)', convertTrial],
  ['uncancel', 'Undo a cancellation at period end', undoCancelAtPeriodEnd],
] as const;

export function registerSubscriptionRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/customers/{customer_id}/subscriptions',
      tags,
      security,
      summary: 'Subscribe a customer to a plan (one live base plan; any number of add-ons)',
      request: { params: CustomerParam, ...jsonBody(CreateSubscriptionBody) },
      responses: {
        201: jsonContent(SubscriptionSchema, 'The subscription'),
        202: jsonContent(
          AccessRequestSchema,
          'An add-on that a separation-of-duties rule needs approved: the access request filed instead (`Location` names it)',
        ),
        ...errorResponses(404, 409, 422),
      },
    }),
    async (c) => {
      const outcome = await createSubscriptionDirect(
        ctxOf(c),
        c.req.valid('param').customer_id,
        c.req.valid('json'),
      );
      if ('request' in outcome) return c.json(outcome.request, 202, requestLocation(outcome.request));
      return c.json(outcome.made, 201);
    },
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/customers/{customer_id}/subscriptions',
      tags,
      security,
      summary: 'A customer’s subscriptions, past and present, each as it is now',
      request: { params: CustomerParam, query: ListQuery },
      responses: { 200: jsonContent(SubscriptionPage, 'A page of subscriptions'), ...errorResponses(404) },
    }),
    async (c) =>
      c.json(await listSubscriptions(ctxOf(c), c.req.valid('param').customer_id, c.req.valid('query')), 200),
  );
  app.openapi(
    createRoute({
      method: 'get',
      path: '/v1/subscriptions/{id}',
      tags,
      security,
      summary: 'A subscription as it is now',
      request: { params: SubscriptionParam },
      responses: { ...one('The subscription'), ...errorResponses(404) },
    }),
    async (c) => c.json(await getSubscription(ctxOf(c), c.req.valid('param').id), 200),
  );
  app.openapi(
    createRoute({
      method: 'patch',
      path: '/v1/subscriptions/{id}',
      tags,
      security,
      summary: 'Change the quantity (seats); per-seat limits follow at once',
      request: { params: SubscriptionParam, ...jsonBody(UpdateSubscriptionBody) },
      responses: { ...one('The subscription'), ...errorResponses(404, 409) },
    }),
    async (c) =>
      c.json(await updateQuantity(ctxOf(c), c.req.valid('param').id, c.req.valid('json').quantity), 200),
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/subscriptions/{id}/change',
      tags,
      security,
      summary: 'Move to another plan of the same kind, now or at the period end',
      description:
        'When the environment’s Stripe `lifecycle_owner` is `tessera` and the subscription is linked to Stripe, the change is made in Stripe first; a Stripe refusal answers 502 `stripe_error` and changes nothing.',
      request: { params: SubscriptionParam, ...jsonBody(ChangeSubscriptionBody) },
      responses: { ...one('The subscription'), ...errorResponses(404, 409, 422, 502) },
    }),
    async (c) =>
      c.json(
        await changeSubscriptionDirect(
          ctxOf(c),
          c.req.valid('param').id,
          c.req.valid('json'),
          c.req.header('idempotency-key'),
        ),
        200,
      ),
  );
  app.openapi(
    createRoute({
      method: 'post',
      path: '/v1/subscriptions/{id}/cancel',
      tags,
      security,
      summary: 'Cancel now, or at the end of the current period (or trial)',
      description:
        'When the environment’s Stripe `lifecycle_owner` is `tessera` and the subscription is linked to Stripe, it is canceled in Stripe first; a Stripe refusal answers 502 `stripe_error` and changes nothing.',
      request: { params: SubscriptionParam, ...jsonBody(CancelSubscriptionBody) },
      responses: { ...one('The subscription'), ...errorResponses(404, 409, 502) },
    }),
    async (c) =>
      c.json(
        await cancelSubscription(
          ctxOf(c),
          c.req.valid('param').id,
          c.req.valid('json').timing,
          c.req.header('idempotency-key'),
        ),
        200,
      ),
  );
  app.openapi(
    createRoute({
      method: 'delete',
      path: '/v1/subscriptions/{id}/scheduled-change',
      tags,
      security,
      summary: 'Drop a change scheduled for the period end',
      request: { params: SubscriptionParam },
      responses: { ...one('The subscription'), ...errorResponses(404, 409) },
    }),
    async (c) => c.json(await cancelScheduledChange(ctxOf(c), c.req.valid('param').id), 200),
  );
  for (const [verb, summary, command] of VERBS) {
    app.openapi(
      createRoute({
        method: 'post',
        path: `/v1/subscriptions/{id}/${verb}`,
        tags,
        security,
        summary,
        request: { params: SubscriptionParam },
        responses: { ...one('The subscription'), ...errorResponses(404, 409) },
      }),
      async (c) => c.json(await command(ctxOf(c), c.req.valid('param').id), 200),
    );
  }
  registerPlanMigrationRoutes(app);
}
