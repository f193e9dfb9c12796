import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import { type AppEnv, ctxOf, errorResponses, jsonBody, jsonContent, security } from '../../platform/http.ts';
import { createCheckout } from './checkout.ts';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/** Where Stripe sends the buyer back: https, or plain http to a loopback address (local development). */
const ReturnUrl = z
  .string()
  .max(2000)
  .refine((value) => {
    try {
      const url = new URL(value);
      return url.protocol === 'https:' || (url.protocol === 'http:' && LOOPBACK.has(url.hostname));
    } catch {
      return false;
    }
  }, 'must be an https URL (or http to a loopback address)');

const CheckoutBody = z
  .strictObject({
    plan: z.string().min(1).max(64).openapi({ example: 'pro' }),
    success_url: ReturnUrl.openapi({ example: 'https://app.example.com/billing/done' }),
    cancel_url: ReturnUrl.openapi({ example: 'https://app.example.com/billing' }),
    quantity: z.number().int().min(1).max(1_000_000).optional().openapi({ description: 'Seats (default 1)' }),
  })
  .openapi('CreateCheckout');

const CheckoutSchema = z
  .object({
    url: z.string().openapi({
      description: 'Send the buyer here',
      example: 'https://checkout.stripe.com/c/pay/cs_test_…',
    }),
    session_id: z.string().openapi({ example: 'cs_test_a1b2c3' }),
  })
  .openapi('Checkout');

const route = createRoute({
  method: 'post',
  path: '/v1/customers/{customer_id}/checkout',
  tags: ['Stripe'],
  security,
  summary: 'Start a Stripe Checkout for a plan (subscription mode)',
  description:
    'Uses the plan’s Stripe price (a lookup key is resolved with Stripe); the customer’s Stripe customer is created and linked when it has none. 422 `stripe_not_configured` or `plan_not_mapped`; a Stripe refusal answers 502 `stripe_error` with Stripe’s message.',
  request: { params: z.object({ customer_id: z.string().min(1).max(255) }), ...jsonBody(CheckoutBody) },
  responses: { 200: jsonContent(CheckoutSchema, 'The Checkout Session'), ...errorResponses(404, 422, 502) },
});

export function registerCheckoutRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(route, async (c) =>
    c.json(await createCheckout(ctxOf(c), c.req.valid('param').customer_id, c.req.valid('json')), 200),
  );
}
