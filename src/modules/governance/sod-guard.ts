import { type FeatureSodRule, rulesNewlyBroken } from '../../domain/sod.ts';
import { type Ctx, reader, type TxCtx, withTransaction } from '../../platform/context.ts';
import { AppError } from '../../platform/errors.ts';
import { lockCustomerRow } from '../customers/repo.ts';
import { heldFeatures } from './sod-holdings.ts';
import { listSodRules } from './sod-rules.ts';

/** 409 `sod_conflict`: the change would let a customer hold two features of one rule; names the rule. */
export class SodConflict extends AppError {
  readonly status = 409;
  readonly code = 'sod_conflict';
  override readonly extensions: Record<string, unknown>;
  constructor(
    readonly rule: FeatureSodRule,
    readonly customerId: string,
  ) {
    super(
      rule.action === 'deny'
        ? `The change would give customer '${customerId}' two features of separation-of-duties rule '${rule.name}' (${rule.id})`
        : `Separation-of-duties rule '${rule.name}' (${rule.id}) needs this change approved, and no approval policy governs it`,
    );
    this.extensions = {
      rule: { id: rule.id, name: rule.name, features: rule.features, action: rule.action },
    };
  }
}

/**
 * The change breaks a `require_approval` rule: nothing was made. A route that can turn the change
 * into an access request catches this; anywhere else it answers 409 `sod_conflict` like a denial.
 */
export class SodApprovalRequired extends SodConflict {}

export interface GuardOptions {
  /** The change comes from an approved access request: `require_approval` rules are satisfied. */
  approved?: boolean;
  /** Later instants at which the change also takes effect (a future start, a period-end change). */
  alsoAt?: Array<Date | null | undefined>;
}

/**
 * Runs a change to what one customer holds under the environment's SoD rules: in one transaction
 * with the customer row locked, it reads what the customer holds before and after the change (by
 * the decisions' own resolution, seeing the transaction's writes) and throws, undoing the change,
 * when the change adds a feature of a rule the customer then breaks. With no rules in the
 * environment the change runs as it would unguarded.
 */
export async function guardHoldings<T>(
  ctx: Ctx,
  customerId: string,
  change: (ctx: Ctx) => Promise<T>,
  options: GuardOptions = {},
): Promise<T> {
  const rules = await listSodRules(reader(ctx), ctx.environment);
  if (rules.length === 0) return change(ctx);
  return withTransaction(ctx, async (t) => {
    await lockCustomerRow(t.tx, ctx.environment, customerId);
    const instants = [t.now, ...(options.alsoAt ?? []).filter((d): d is Date => !!d && d > t.now)];
    const before = await holdingsAt(t, customerId, instants);
    const result = await change(t);
    const after = await holdingsAt(t, customerId, instants);
    const broken = instants.flatMap((_, i) => rulesNewlyBroken(rules, before[i]!, after[i]!));
    const denied = broken.find((r) => r.action === 'deny');
    if (denied) throw new SodConflict(denied, customerId);
    const held = broken.find((r) => r.action === 'require_approval');
    if (held && !options.approved) throw new SodApprovalRequired(held, customerId);
    return result;
  });
}

function holdingsAt(t: TxCtx, customerId: string, instants: Date[]): Promise<Set<string>[]> {
  return Promise.all(instants.map((at) => heldFeatures(t.tx, t.environment, customerId, at)));
}
