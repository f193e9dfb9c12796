/**
 * Helpers shared by the metering suites: a customer on a plan with one metered feature, and
 * shorthands for sending usage. Built on the scenario builder, so names are per-scenario.
 */
import { randomBytes } from 'node:crypto';
import { expect } from 'vitest';
import type { TestApp } from '../helpers/harness.ts';
import { type EntitlementSpec, type Scenario, scenario } from '../helpers/scenario.ts';

export interface MeteredSetup {
  limit?: number | null;
  reset?: 'none' | 'day' | 'week' | 'month' | 'year' | 'billing_period';
  overage?: 'deny' | 'allow';
  aggregation?: 'sum' | 'max' | 'unique';
  notify?: number[];
  extra?: EntitlementSpec[];
  subscribe?: { starts_at?: string; quantity?: number };
}

/** A customer on a plan whose `calls` feature is metered as described. */
export async function meteredCustomer(app: TestApp, setup: MeteredSetup = {}): Promise<Scenario> {
  const s = await scenario(app)
    .feature('calls', 'metered', setup.aggregation ? { aggregation: setup.aggregation } : {})
    .feature('sso', 'boolean')
    .plan('plan', [
      {
        feature: 'calls',
        limit: setup.limit === undefined ? 100 : setup.limit,
        reset: setup.reset ?? 'month',
        overage: setup.overage ?? 'deny',
        ...(setup.notify ? { notify_at_percent: setup.notify } : {}),
      },
      { feature: 'sso', enabled: true },
      ...(setup.extra ?? []),
    ])
    .customer('acme')
    .onPlan('plan', setup.subscribe);
  return s;
}

export type UsageBody = Record<string, unknown>;

export function uniqueKey(): string {
  return `k_${randomBytes(8).toString('hex')}`;
}

/** POST /v1/usage for the scenario's customer and `calls`, with a fresh idempotency key unless given. */
export async function use(s: Scenario, body: UsageBody = {}, key = s.app.adminKey) {
  return s.app.json<Record<string, unknown>>(
    'POST',
    '/v1/usage',
    { customer_id: s.customerId, feature: s.key('calls'), idempotency_key: uniqueKey(), ...body },
    { key },
  );
}

export async function usedNow(s: Scenario, feature = 'calls'): Promise<number> {
  const row = await s.entitlement(feature);
  expect(row, `entitlement ${feature}`).toBeDefined();
  return row!.used as number;
}

/** Sum of the ledger for the scenario's customer and feature. */
export async function ledgerSum(
  s: Scenario,
  feature = 'calls',
): Promise<{ counted: number; events: number }> {
  const db = s.app.runtime.deps.db;
  const { sql } = await import('kysely');
  const row = await sql<{ counted: string | null; events: string }>`
    SELECT sum(counted) AS counted, count(*) AS events FROM usage_events
    WHERE environment = 'test' AND customer_id = ${s.customerId} AND feature = ${s.key(feature)}`.execute(db);
  return { counted: Number(row.rows[0]?.counted ?? 0), events: Number(row.rows[0]?.events ?? 0) };
}
