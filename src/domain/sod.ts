/**
 * Separation of duties over what a customer holds: a rule names features that no customer may hold
 * two of at once. Pure: the caller says which features the customer holds (has access to now).
 */

export type SodAction = 'deny' | 'require_approval';

export interface FeatureSodRule {
  id: string;
  name: string;
  features: readonly string[];
  action: SodAction;
}

/** The rule's features the customer holds. */
export function heldOfRule(rule: FeatureSodRule, held: ReadonlySet<string>): string[] {
  return rule.features.filter((f) => held.has(f));
}

/** Rules the holdings break: two or more of a rule's features held at once. */
export function rulesBroken<R extends FeatureSodRule>(rules: readonly R[], held: ReadonlySet<string>): R[] {
  return rules.filter((rule) => heldOfRule(rule, held).length >= 2);
}

/**
 * Rules a change breaks: after it the rule is broken, and the change gave the customer one of the
 * rule's features it did not hold before. A rule already broken before the change (made after the
 * fact, say) does not stop a change that adds nothing to it.
 */
export function rulesNewlyBroken<R extends FeatureSodRule>(
  rules: readonly R[],
  before: ReadonlySet<string>,
  after: ReadonlySet<string>,
): R[] {
  return rulesBroken(rules, after).filter((rule) => heldOfRule(rule, after).some((f) => !before.has(f)));
}
