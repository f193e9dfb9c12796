import { createRoute, type OpenAPIHono, z } from '@hono/zod-openapi';
import {
  type AppEnv,
  ctxOf,
  errorResponses,
  jsonBody,
  jsonContent,
  ListQuery,
  security,
} from '../../platform/http.ts';
import { CustomerIdParam, CustomerListQuery, CustomerSchema, PutCustomerBody } from './schema.ts';
import { deleteCustomer, getCustomer, listCustomers, upsertCustomer } from './service.ts';

const tags = ['Customers'];

const put = createRoute({
  method: 'put',
  path: '/v1/customers/{customer_id}',
  tags,
  security,
  summary: 'Create or update a customer by your own id (a deleted one is restored)',
  request: { params: CustomerIdParam, ...jsonBody(PutCustomerBody) },
  responses: {
    200: jsonContent(CustomerSchema, 'The updated customer'),
    201: jsonContent(CustomerSchema, 'The created (or restored) customer'),
    ...errorResponses(409),
  },
});

const get = createRoute({
  method: 'get',
  path: '/v1/customers/{customer_id}',
  tags,
  security,
  summary: 'Get a customer',
  request: { params: CustomerIdParam },
  responses: { 200: jsonContent(CustomerSchema, 'The customer'), ...errorResponses(404) },
});

const listRoute = createRoute({
  method: 'get',
  path: '/v1/customers',
  tags,
  security,
  summary: 'List customers by id (deleted ones are left out)',
  request: { query: ListQuery.extend(CustomerListQuery.shape) },
  responses: {
    200: jsonContent(
      z.object({ data: z.array(CustomerSchema), next_cursor: z.string().nullable() }),
      'A page of customers',
    ),
    ...errorResponses(),
  },
});

const remove = createRoute({
  method: 'delete',
  path: '/v1/customers/{customer_id}',
  tags,
  security,
  summary: 'Delete a customer: ends its subscriptions, keeps its history',
  request: { params: CustomerIdParam },
  responses: { 200: jsonContent(CustomerSchema, 'The deleted customer'), ...errorResponses(404) },
});

export function registerCustomerRoutes(app: OpenAPIHono<AppEnv>): void {
  app.openapi(put, async (c) => {
    const result = await upsertCustomer(ctxOf(c), c.req.valid('param').customer_id, c.req.valid('json'));
    return result.created ? c.json(result.customer, 201) : c.json(result.customer, 200);
  });
  app.openapi(get, async (c) => c.json(await getCustomer(ctxOf(c), c.req.valid('param').customer_id), 200));
  app.openapi(listRoute, async (c) => c.json(await listCustomers(ctxOf(c), c.req.valid('query')), 200));
  app.openapi(remove, async (c) =>
    c.json(await deleteCustomer(ctxOf(c), c.req.valid('param').customer_id), 200),
  );
}
