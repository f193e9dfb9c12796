/**
 * Helpers shared by the metering suites: a customer on a plan with one metered feature, and
 * shorthands for sending usage. Built on the scenario builder, so names are per-scenario.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { expect } from 'vitest';
import type { CreditGrant, CustomerSnapshot } from '../../src/domain/types.ts';
import type { UsageEvent, UsageTerms } from '../../src/modules/metering/store.ts';
import type { Db } from '../../src/platform/db.ts';
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

// Store-level fixtures for the contract suite (metering-contract.ts).

export const period = { start: new Date('2026-01-01T00:00:00Z'), end: new Date('2026-02-01T00:00:00Z') };

export function terms(fields: Partial<UsageTerms> = {}): UsageTerms {
  return { aggregation: 'sum', limit: 100, overage: 'deny', thresholds: [], grants: [], period, ...fields };
}

export function customer(): string {
  return `c-${randomBytes(5).toString('hex')}`;
}

/**
 * A customer the database has: the flusher writes no ledger row for a customer its database does
 * not know (it dead-letters the event), so suites that read the ledger use these.
 */
export async function knownCustomer(db: Db, environment = 'test'): Promise<string> {
  const id = customer();
  await sql`INSERT INTO customers (environment, customer_id) VALUES (${environment}, ${id})`.execute(db);
  return id;
}

export function knownCustomers(db: Db, n: number): Promise<string[]> {
  return Promise.all(Array.from({ length: n }, () => knownCustomer(db)));
}

export function event(customerId: string, fields: Partial<UsageEvent> = {}): UsageEvent {
  return {
    customerId,
    feature: 'calls',
    idempotencyKey: `k-${randomBytes(6).toString('hex')}`,
    value: 1,
    member: null,
    occurredAt: new Date('2026-01-15T12:00:00Z'),
    terms: terms(),
    ...fields,
  };
}

export function snapshot(
  customerId: string,
  aggregation: 'sum' | 'max' | 'unique',
  grants: CreditGrant[] = [],
): CustomerSnapshot {
  const feature = {
    key: 'calls',
    name: 'calls',
    type: 'metered' as const,
    unit: null,
    description: null,
    aggregation,
    archived: false,
  };
  return {
    environment: 'test',
    customerId,
    exists: true,
    attributes: {},
    version: 1,
    features: new Map([['calls', feature]]),
    subscriptions: [],
    planVersions: new Map(),
    overrides: [],
    grants,
    policy: { pastDueGraceMs: 0, fallbackPlan: null },
  };
}

export function grant(customerId: string, id: string, amount: number): CreditGrant {
  const at = new Date('2025-12-01T00:00:00Z');
  return {
    id,
    customerId,
    feature: 'calls',
    amount,
    priority: 0,
    effectiveAt: at,
    expiresAt: null,
    createdAt: at,
    voidedAt: null,
    reason: 't',
  };
}
