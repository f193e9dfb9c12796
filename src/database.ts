/**
 * The database as the whole app sees it: platform's tables (platform/db-types.ts) and every
 * module's, composed here at the root, as Kysely's own example app does. Each slice declares its
 * tables beside its repo (`modules/<slice>/tables.ts`); this file merges them into platform's `DB`
 * interface, so `Kysely<DB>` (platform/db.ts) types every query in every slice while platform
 * imports no module. Types only: nothing here runs and nothing imports it; tsc reads it with the
 * rest of src/ (tsconfig.json `include`).
 */
import type { BillingTables } from './modules/billing/tables.ts';
import type { CatalogTables } from './modules/catalog/tables.ts';
import type { CustomerTables } from './modules/customers/tables.ts';
import type { ReviewTables } from './modules/governance/review-tables.ts';
import type { GovernanceTables } from './modules/governance/tables.ts';
import type { MeteringTables } from './modules/metering/tables.ts';
import type { OverrideTables } from './modules/overrides/tables.ts';
import type { SubscriptionTables } from './modules/subscriptions/tables.ts';
import type { TokenTables } from './modules/tokens/tables.ts';
import type { WebhookTables } from './modules/webhooks/tables.ts';

declare module './platform/db-types.ts' {
  interface DB
    extends BillingTables,
      CatalogTables,
      CustomerTables,
      GovernanceTables,
      MeteringTables,
      OverrideTables,
      ReviewTables,
      SubscriptionTables,
      TokenTables,
      WebhookTables {}
}
