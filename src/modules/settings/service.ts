import { type Ctx, reader, requireScope, withTransaction } from '../../platform/context.ts';
import { Unprocessable } from '../../platform/errors.ts';
import { type EnvironmentSettings, readSettings } from './repo.ts';

export async function getSettings(ctx: Ctx): Promise<EnvironmentSettings> {
  requireScope(ctx, 'admin');
  return readSettings(reader(ctx), ctx.environment);
}

export async function updateSettings(
  ctx: Ctx,
  patch: Partial<EnvironmentSettings>,
): Promise<EnvironmentSettings> {
  requireScope(ctx, 'admin');
  return withTransaction(ctx, async (t) => {
    const before = await readSettings(t.tx, ctx.environment);
    if (patch.fallback_plan) {
      const plan = await t.tx
        .selectFrom('plans')
        .select(['addon', 'archived_at'])
        .where('environment', '=', ctx.environment)
        .where('key', '=', patch.fallback_plan)
        .executeTakeFirst();
      if (!plan || plan.addon || plan.archived_at) {
        throw new Unprocessable('invalid_fallback_plan', 'The fallback plan must be an existing base plan', [
          { path: 'fallback_plan', message: `no active base plan '${patch.fallback_plan}'` },
        ]);
      }
    }
    const after = { ...before, ...patch };
    await t.tx
      .updateTable('environments')
      .set({ settings: JSON.stringify(after) })
      .where('id', '=', ctx.environment)
      .execute();
    t.audit({
      action: 'settings.updated',
      target: { type: 'environment', id: ctx.environment },
      before,
      after,
    });
    t.emit({ topic: 'catalog.changed', payload: { kind: 'settings' } });
    return after;
  });
}
