import type { TxCtx } from '../../platform/context.ts';
import { createGrant } from '../overrides/grant-service.ts';
import { createOverride } from '../overrides/override-service.ts';
import { CreateGrantBody, CreateOverrideBody } from '../overrides/schema.ts';
import { CreateSubscriptionBody } from '../subscriptions/schema.ts';
import { createSubscription } from '../subscriptions/service.ts';
import { HOUR_MS, type Row, record } from './request-rows.ts';
import { TrialExtensionBody } from './request-schema.ts';
import { guardHoldings } from './sod-guard.ts';
import { applyTrialExtension } from './trial-extension.ts';

const later = (iso: unknown) => (typeof iso === 'string' ? new Date(iso) : null);

/**
 * Applies an approved request's change through the direct verb in this transaction (ending it
 * after the requested duration), under the SoD rules: a `deny` rule still refuses it (409
 * `sod_conflict`, and the approval is undone with it); `require_approval` rules are met.
 */
export async function applyRequest(
  t: TxCtx,
  row: Row,
  decisions: Array<Record<string, unknown>>,
): Promise<Row> {
  const expiresAt =
    row.duration_hours === null
      ? null
      : new Date(t.now.getTime() + row.duration_hours * HOUR_MS).toISOString();
  const timing = expiresAt ? { expires_at: expiresAt } : {};
  const approved = { approved: true };
  let applied: { kind: string; id: string; expires_at: string | null };
  if (row.kind === 'override') {
    const change = CreateOverrideBody.parse({ ...row.change, ...timing });
    const o = await guardHoldings(t, row.customer_id, (c) => createOverride(c, row.customer_id, change), {
      ...approved,
      alsoAt: [later(change.starts_at)],
    });
    applied = { kind: 'override', id: o.id, expires_at: o.expires_at };
  } else if (row.kind === 'grant') {
    const change = CreateGrantBody.parse({ ...row.change, ...timing });
    const g = await guardHoldings(t, row.customer_id, (c) => createGrant(c, row.customer_id, change), {
      ...approved,
      alsoAt: [later(change.effective_at)],
    });
    applied = { kind: 'grant', id: g.id, expires_at: g.expires_at };
  } else if (row.kind === 'trial_extension') {
    // Gives no feature the customer does not hold already: no SoD rule to check.
    const extended = await applyTrialExtension(t, row.customer_id, TrialExtensionBody.parse(row.change));
    applied = {
      kind: 'trial_extension',
      id: extended.id,
      expires_at: extended.trialEndsAt?.toISOString() ?? null,
    };
  } else {
    const change = CreateSubscriptionBody.parse(row.change);
    const s = await guardHoldings(t, row.customer_id, (c) => createSubscription(c, row.customer_id, change), {
      ...approved,
      alsoAt: [later(change.starts_at)],
    });
    applied = { kind: 'addon', id: s.id, expires_at: null };
  }
  const updated = (await t.tx
    .updateTable('access_requests')
    .set({
      status: 'applied',
      decisions: JSON.stringify(decisions),
      applied: JSON.stringify(applied),
      decided_at: t.now,
      stage_deadline_at: null,
    })
    .where('id', '=', row.id)
    .returningAll()
    .executeTakeFirstOrThrow()) as Row;
  record(t, 'access_request.applied', updated, row);
  return updated;
}
