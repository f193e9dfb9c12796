import { sql } from 'kysely';
import type { TxCtx } from '../../platform/context.ts';
import { DecisionRefused } from './decision-refused.ts';
import type { Row } from './request-rows.ts';
import { listDutyRules } from './sod-rules.ts';

/**
 * Incompatible duties, checked before an approval: under a `creator_may_not_approve_extension`
 * rule, whoever created an override or grant that is live now for the request's customer and
 * feature may not approve a request that extends it (403 `sod_duty_conflict`, naming the rule).
 * With `min_amount`, only grants of at least that amount and metered overrides of at least that
 * limit (or unlimited) count; boolean and config overrides have no size and then do not count.
 */
export async function assertNoDutyConflict(t: TxCtx, row: Row, person: string): Promise<void> {
  if (row.kind !== 'override' && row.kind !== 'grant') return;
  const rules = await listDutyRules(t.tx, t.environment);
  if (rules.length === 0) return;
  const feature = String(row.change.feature);
  const [overrides, grants] = await Promise.all([
    t.tx
      .selectFrom('overrides')
      .select(['id', 'effect'])
      .where('environment', '=', t.environment)
      .where('customer_id', '=', row.customer_id)
      .where('feature', '=', feature)
      .where(sql<string>`created_by ->> 'person'`, '=', person)
      .where('starts_at', '<=', t.now)
      .where((eb) => eb.or([eb('ended_at', 'is', null), eb('ended_at', '>', t.now)]))
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', t.now)]))
      .execute(),
    t.tx
      .selectFrom('credit_grants')
      .select(['id', 'amount'])
      .where('environment', '=', t.environment)
      .where('customer_id', '=', row.customer_id)
      .where('feature', '=', feature)
      .where(sql<string>`created_by ->> 'person'`, '=', person)
      .where('effective_at', '<=', t.now)
      .where('voided_at', 'is', null)
      .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', t.now)]))
      .execute(),
  ]);
  const sizes = [
    ...overrides.map((o) => {
      const effect = o.effect as { type: string; limit?: number | null };
      if (effect.type !== 'metered') return { id: o.id, size: null };
      return { id: o.id, size: effect.limit ?? Number.POSITIVE_INFINITY };
    }),
    ...grants.map((g) => ({ id: g.id, size: Number(g.amount) })),
  ];
  for (const rule of rules) {
    const created = sizes.find(
      (s) => rule.minAmount === null || (s.size !== null && s.size >= rule.minAmount),
    );
    if (created)
      throw new DecisionRefused(
        'sod_duty_conflict',
        `'${person}' created ${created.id} for this customer and feature, and separation-of-duties rule '${rule.name}' (${rule.id}) forbids approving its extension`,
        { rule: { id: rule.id, name: rule.name, duty: rule.duty }, exception_id: created.id },
      );
  }
}
