import type { TxCtx } from '../../platform/context.ts';

/**
 * Records a catalog change inside its transaction: the audit event, and the `catalog.changed`
 * outbox event that caches and outbound webhooks listen to.
 */
export function recordCatalogChange(
  t: TxCtx,
  change: {
    action: string;
    target: { type: 'feature' | 'plan'; id: string; key: string };
    before?: unknown;
    after?: unknown;
    version?: number;
  },
): void {
  const { action, target, before, after, version } = change;
  t.audit({ action, target: { type: target.type, id: target.id }, before, after });
  t.emit({
    topic: 'catalog.changed',
    payload: {
      action,
      kind: target.type,
      key: target.key,
      id: target.id,
      ...(version !== undefined ? { version } : {}),
    },
  });
}
