import { z } from '@hono/zod-openapi';

/** The vendor's own id for the customer: safe in a URL path, up to 255 characters. */
export const CUSTOMER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,254}$/;
export const MAX_ATTRIBUTES = 100;

export const CustomerIdParam = z.object({
  customer_id: z
    .string()
    .max(255)
    .regex(
      CUSTOMER_ID_PATTERN,
      'letters, digits and `_ . : @ -`, starting with a letter or digit, at most 255',
    )
    .openapi({ example: 'acme-42' }),
});

const AttributeValue = z.union([z.string().max(1000), z.number(), z.boolean()]);

export const AttributesSchema = z
  .record(z.string().min(1).max(100), AttributeValue)
  .refine((attributes) => Object.keys(attributes).length <= MAX_ATTRIBUTES, {
    message: `at most ${MAX_ATTRIBUTES} attributes`,
  })
  .openapi({
    description: 'What conditions can read as `customer.attributes`',
    example: { region: 'eu', seats: 12, beta: true },
    maxProperties: MAX_ATTRIBUTES,
  });

export const PutCustomerBody = z
  .strictObject({
    name: z.string().trim().min(1).max(500).nullable().optional().openapi({ example: 'Acme Inc.' }),
    email: z.email().max(320).nullable().optional().openapi({ example: 'billing@acme.test' }),
    attributes: AttributesSchema.optional().openapi({
      description: 'Replaces the whole map when sent; omitted keeps the stored one',
    }),
    stripe_customer_id: z
      .string()
      .trim()
      .min(1)
      .max(255)
      .nullable()
      .optional()
      .openapi({ description: 'Unique within the environment', example: 'cus_Q1a2b3' }),
  })
  .openapi('PutCustomer');

export const CustomerSchema = z
  .object({
    customer_id: z.string(),
    name: z.string().nullable(),
    email: z.string().nullable(),
    attributes: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
    stripe_customer_id: z.string().nullable(),
    version: z.number().int().openapi({ description: 'Entitlement version: grows with every change' }),
    created_at: z.string(),
    updated_at: z.string(),
    deleted_at: z.string().nullable(),
  })
  .openapi('Customer');

export const CustomerListQuery = z.object({
  email: z.string().max(320).optional().openapi({ description: 'Exact email, case-insensitive' }),
  stripe_customer_id: z.string().max(255).optional(),
});

export type PutCustomerInput = z.infer<typeof PutCustomerBody>;
export type CustomerResource = z.infer<typeof CustomerSchema>;
