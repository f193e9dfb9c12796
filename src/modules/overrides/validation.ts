import { ConditionSyntaxError, compileCondition } from '../../domain/conditions.ts';
import type { Feature, OverrideEffect } from '../../domain/types.ts';
import { type Ctx, reader } from '../../platform/context.ts';
import { type FieldError, Unprocessable } from '../../platform/errors.ts';
import { loadFeatures } from '../catalog/repo.ts';
import type { CreateOverrideInput } from './schema.ts';

export function invalid(code: string, message: string, errors: FieldError[]): Unprocessable {
  return new Unprocessable(code, message, errors);
}

export function effectFor(feature: Feature, input: CreateOverrideInput): OverrideEffect {
  const given = (['enabled', 'value', 'limit'] as const).filter((k) => input[k] !== undefined);
  const expected = feature.type === 'boolean' ? 'enabled' : feature.type === 'config' ? 'value' : 'limit';
  for (const field of given) {
    if (field !== expected) {
      throw invalid('invalid_override', `A ${feature.type} feature takes \`${expected}\`, not \`${field}\``, [
        { path: field, message: `not valid for a ${feature.type} feature; use ${expected}` },
      ]);
    }
  }
  if (given.length === 0) {
    throw invalid('invalid_override', `A ${feature.type} feature override needs \`${expected}\``, [
      { path: expected, message: 'required' },
    ]);
  }
  switch (feature.type) {
    case 'boolean':
      return { type: 'boolean', enabled: input.enabled! };
    case 'config':
      return { type: 'config', value: input.value as OverrideEffect extends { value: infer V } ? V : never };
    case 'metered':
      return { type: 'metered', limit: input.limit ?? null };
  }
}

export function validateCondition(condition: string | undefined, path: string): void {
  if (condition === undefined) return;
  try {
    compileCondition(condition);
  } catch (err) {
    if (err instanceof ConditionSyntaxError)
      throw invalid('invalid_condition', 'The condition does not compile', [{ path, message: err.message }]);
    throw err;
  }
}

export function validateWindow(start: Date, end: Date | null, startPath: string, endPath: string): void {
  if (end && end <= start)
    throw invalid('invalid_window', `${endPath} must be after ${startPath}`, [
      { path: endPath, message: `must be after ${startPath}` },
    ]);
}

export async function liveFeature(ctx: Ctx, key: string): Promise<Feature> {
  const feature = (await loadFeatures(reader(ctx), ctx.environment)).get(key);
  if (!feature || feature.archived)
    throw invalid('unknown_feature', `No active feature '${key}'`, [
      { path: 'feature', message: 'unknown or archived feature' },
    ]);
  return feature;
}
