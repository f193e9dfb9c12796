import {
  type EvaluationContext,
  FlagNotFoundError,
  GeneralError,
  InvalidContextError,
  type JsonValue,
  type Provider,
  type ResolutionDetails,
  StandardResolutionReasons,
  TargetingKeyMissingError,
  TypeMismatchError,
} from '@openfeature/server-sdk';
import type { Tessera } from './client.ts';
import type { Decision } from './types.ts';

export interface TesseraProviderOptions {
  /** Send the evaluation context's scalar attributes as the check's `context` (default true). */
  sendContext?: boolean;
}

type Kind = 'boolean' | 'string' | 'number' | 'object';

/**
 * An OpenFeature server provider: a flag key is a Tessera feature key and the targetingKey is
 * the customer id. Boolean flags answer access (variant `on`/`off`); string, number and object
 * flags answer a config feature's value (variant: the kind of source that gave it). An unknown
 * feature is FLAG_NOT_FOUND, an unknown customer INVALID_CONTEXT, a missing targetingKey
 * TARGETING_KEY_MISSING, a value of another type TYPE_MISMATCH; a config feature the customer
 * does not hold gives the default with reason DEFAULT.
 */
export class TesseraProvider implements Provider {
  readonly runsOn = 'server' as const;
  readonly metadata = { name: 'tessera' } as const;
  private readonly tessera: Tessera;
  private readonly sendContext: boolean;

  constructor(tessera: Tessera, options: TesseraProviderOptions = {}) {
    this.tessera = tessera;
    this.sendContext = options.sendContext ?? true;
  }

  resolveBooleanEvaluation(flagKey: string, defaultValue: boolean, context: EvaluationContext) {
    return this.resolve(flagKey, defaultValue, context, 'boolean');
  }
  resolveStringEvaluation(flagKey: string, defaultValue: string, context: EvaluationContext) {
    return this.resolve(flagKey, defaultValue, context, 'string');
  }
  resolveNumberEvaluation(flagKey: string, defaultValue: number, context: EvaluationContext) {
    return this.resolve(flagKey, defaultValue, context, 'number');
  }
  resolveObjectEvaluation<T extends JsonValue>(flagKey: string, defaultValue: T, context: EvaluationContext) {
    return this.resolve(flagKey, defaultValue, context, 'object');
  }

  private async decide(flagKey: string, context: EvaluationContext): Promise<Decision> {
    const customerId = context.targetingKey;
    if (!customerId) throw new TargetingKeyMissingError('targetingKey (the Tessera customer id) is missing');
    const attributes: Record<string, string | number | boolean> = {};
    if (this.sendContext) {
      for (const [k, v] of Object.entries(context)) {
        if (k === 'targetingKey') continue;
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') attributes[k] = v;
      }
    }
    let decision: Decision;
    try {
      decision = await this.tessera.check({
        customer_id: customerId,
        feature: flagKey,
        ...(Object.keys(attributes).length ? { context: attributes } : {}),
      });
    } catch (err) {
      throw new GeneralError(`Tessera check failed: ${(err as Error).message}`);
    }
    if (decision.reason === 'unknown_feature') throw new FlagNotFoundError(`no Tessera feature '${flagKey}'`);
    if (decision.reason === 'unknown_customer')
      throw new InvalidContextError(`no Tessera customer '${customerId}'`);
    return decision;
  }

  private async resolve<T>(
    flagKey: string,
    defaultValue: T,
    context: EvaluationContext,
    kind: Kind,
  ): Promise<ResolutionDetails<T>> {
    const decision = await this.decide(flagKey, context);
    const flagMetadata = {
      tessera_reason: decision.reason,
      ...(decision.version !== null ? { version: decision.version } : {}),
    };
    const reason = decision.stale
      ? StandardResolutionReasons.STALE
      : decision.source === 'snapshot'
        ? StandardResolutionReasons.CACHED
        : StandardResolutionReasons.TARGETING_MATCH;
    if (kind === 'boolean') {
      return { value: decision.allowed as T, variant: decision.allowed ? 'on' : 'off', reason, flagMetadata };
    }
    if (decision.source === 'fallback') throw new GeneralError('Tessera is unreachable');
    if (!decision.allowed || decision.value === undefined) {
      if (decision.type && decision.type !== 'config') {
        throw new TypeMismatchError(`'${flagKey}' is a ${decision.type} feature, not a ${kind} value`);
      }
      return { value: defaultValue, reason: StandardResolutionReasons.DEFAULT, flagMetadata };
    }
    const value = decision.value;
    const actual = value === null ? 'null' : Array.isArray(value) ? 'object' : typeof value;
    if (actual !== kind) throw new TypeMismatchError(`'${flagKey}' holds a ${actual}, not a ${kind}`);
    return { value: value as T, variant: decision.sources[0]?.kind ?? 'value', reason, flagMetadata };
  }
}
