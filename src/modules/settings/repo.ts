import type { Executor } from '../../platform/db.ts';

/** Per-environment policy: how states shape access, and trial rules. */
export interface EnvironmentSettings {
  past_due_grace_days: number;
  /** Plan whose latest version applies when a customer's base plan grants nothing; null for none. */
  fallback_plan: string | null;
  /** When false, a customer cannot start a second trial of the same plan. */
  allow_repeat_trials: boolean;
}

export const DEFAULT_SETTINGS: EnvironmentSettings = {
  past_due_grace_days: 3,
  fallback_plan: null,
  allow_repeat_trials: false,
};

export async function readSettings(db: Executor, environment: string): Promise<EnvironmentSettings> {
  const row = await db
    .selectFrom('environments')
    .select('settings')
    .where('id', '=', environment)
    .executeTakeFirst();
  return { ...DEFAULT_SETTINGS, ...((row?.settings ?? {}) as Partial<EnvironmentSettings>) };
}
