import { type Kysely, sql } from 'kysely';

/**
 * The end of every change in one statement: `tessera_commit_change` moves the touched customers'
 * entitlement versions on, writes the change's outbox events (then one
 * `customer.entitlements_changed` per touched customer, with its new version) and appends its
 * audit events to the chain (`tessera_audit_append`). Done from the API as separate statements,
 * each was a round trip, and under load each round trip waits for the API's event loop.
 *
 * Appending to the audit chain in one statement. The environment's chain head is locked from the
 * append until commit, so every change of an environment waits for the one before it there; done
 * as three statements (lock and read the head, insert the events, move the head) the lock was held
 * across three round trips to the API, each waiting for the API's event loop under load. Here the
 * lock is held for this function and the commit that follows it.
 *
 * The API computes each event's canonical JSON (src/platform/audit-chain.ts) in three pieces around
 * the two values only the head can give, `chain_index` and `prev_hash`; the function puts them in
 * and hashes exactly what `chainHash` hashes: SHA-256 of prev_hash followed by the canonical JSON.
 */
// biome-ignore lint/suspicious/noExplicitAny: migrations are frozen and must not depend on today's schema types
export async function up(db: Kysely<any>): Promise<void> {
  await sql`
    CREATE FUNCTION tessera_audit_append(p_environment text, p_entries jsonb)
    RETURNS TABLE (o_chain_index bigint, o_prev_hash text, o_hash text)
    LANGUAGE plpgsql AS $$
    DECLARE
      v_index bigint;
      v_hash text;
      v_prev text;
      e jsonb;
    BEGIN
      SELECT h.last_index, h.last_hash INTO v_index, v_hash
        FROM audit_heads h WHERE h.environment = p_environment FOR UPDATE;
      IF NOT FOUND THEN
        RAISE EXCEPTION 'no audit chain head for environment %', p_environment;
      END IF;
      FOR e IN SELECT x.value FROM jsonb_array_elements(p_entries) WITH ORDINALITY AS x(value, n) ORDER BY x.n
      LOOP
        v_index := v_index + 1;
        v_prev := v_hash;
        v_hash := encode(sha256(convert_to(
          v_prev || (e->>'head') || v_index::text || (e->>'mid') || '"' || v_prev || '"' || (e->>'tail'),
          'UTF8')), 'hex');
        INSERT INTO audit_events (id, environment, chain_index, actor, action, target, customer_id,
                                  before, after, request_id, at, prev_hash, hash)
        VALUES (e->>'id', p_environment, v_index, e->'actor', e->>'action', e->'target',
                e->>'customer_id', NULLIF(e->'before', 'null'::jsonb), NULLIF(e->'after', 'null'::jsonb),
                e->>'request_id', (e->>'at')::timestamptz, v_prev, v_hash);
        o_chain_index := v_index;
        o_prev_hash := v_prev;
        o_hash := v_hash;
        RETURN NEXT;
      END LOOP;
      UPDATE audit_heads SET last_index = v_index, last_hash = v_hash WHERE environment = p_environment;
    END
    $$`.execute(db);

  await sql`
    CREATE FUNCTION tessera_commit_change(p_environment text, p_customers text[], p_now timestamptz,
                                          p_events jsonb, p_audit jsonb)
    RETURNS TABLE (o_customer_id text, o_version bigint)
    LANGUAGE plpgsql AS $$
    DECLARE
      v_bumped jsonb := '[]'::jsonb;
      r record;
    BEGIN
      IF cardinality(p_customers) > 0 THEN
        FOR r IN
          UPDATE customers SET version = version + 1, updated_at = p_now
           WHERE environment = p_environment AND customer_id = ANY(p_customers)
          RETURNING customer_id, version
        LOOP
          v_bumped := v_bumped || jsonb_build_array(jsonb_build_object('customer_id', r.customer_id, 'version', r.version));
          o_customer_id := r.customer_id;
          o_version := r.version;
          RETURN NEXT;
        END LOOP;
      END IF;
      INSERT INTO outbox (environment, customer_id, topic, payload)
      SELECT p_environment, x.value->>'customer_id', x.value->>'topic', x.value->'payload'
        FROM jsonb_array_elements(p_events) WITH ORDINALITY AS x(value, n) ORDER BY x.n;
      INSERT INTO outbox (environment, customer_id, topic, payload)
      SELECT p_environment, x.value->>'customer_id', 'customer.entitlements_changed', x.value
        FROM jsonb_array_elements(v_bumped) WITH ORDINALITY AS x(value, n) ORDER BY x.n;
      IF jsonb_array_length(p_audit) > 0 THEN
        PERFORM count(*) FROM tessera_audit_append(p_environment, p_audit);
      END IF;
    END
    $$`.execute(db);
}

// biome-ignore lint/suspicious/noExplicitAny: see up()
export async function down(db: Kysely<any>): Promise<void> {
  await sql`DROP FUNCTION tessera_commit_change(text, text[], timestamptz, jsonb, jsonb)`.execute(db);
  await sql`DROP FUNCTION tessera_audit_append(text, jsonb)`.execute(db);
}
