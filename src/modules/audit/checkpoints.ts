import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Selectable } from 'kysely';
import { canonicalJson } from '../../platform/audit-chain.ts';
import type { Db, Executor } from '../../platform/db.ts';
import type { AuditCheckpointsTable } from '../../platform/db-types.ts';
import { newId } from '../../platform/ids.ts';
import type { SecretKeys } from '../../platform/secret-key.ts';
import { type VerifyResult, verifyAuditChain } from './repo.ts';

/**
 * Signed checkpoints of the audit chain. The chain's hashes show an edit only to someone who kept
 * an earlier hash: a database writer can rewrite an event, recompute every later hash and move
 * `audit_heads`. A checkpoint signs the head (event id, position, hash) with an HMAC key derived
 * from TESSERA_SECRET_KEY, which the database never holds, so such a rewrite no longer matches the
 * first checkpoint written after the rewritten event. Checkpoints are numbered per environment
 * (`seq`, signed), so one deleted from the middle shows as a gap.
 */
export const CHECKPOINT_KEY_PURPOSE = 'tessera audit checkpoints v1';

export type CheckpointRow = Selectable<AuditCheckpointsTable>;

export type CheckpointProblem =
  | 'signed_with_another_key'
  | 'bad_signature'
  | 'out_of_sequence'
  | 'event_missing'
  | 'event_mismatch';

export interface Checkpoint {
  id: string;
  environment: string;
  seq: number;
  event_id: string;
  event_count: number;
  event_hash: string;
  created_at: string;
  key_id: string;
  signature: string;
}

interface CheckpointKey {
  key: Buffer;
  keyId: string;
}

function checkpointKey(secrets: SecretKeys): CheckpointKey {
  const key = secrets.deriveKey(CHECKPOINT_KEY_PURPOSE);
  return { key, keyId: secrets.keyId(key) };
}

function toCheckpoint(row: CheckpointRow): Checkpoint {
  return { ...row, created_at: row.created_at.toISOString() };
}

/** HMAC-SHA256 over the canonical JSON of every field but the signature. */
export function signCheckpoint(key: Buffer, fields: Omit<Checkpoint, 'signature'>): string {
  return createHmac('sha256', key)
    .update(canonicalJson({ ...fields, v: CHECKPOINT_KEY_PURPOSE }))
    .digest('hex');
}

function signatureHolds(key: Buffer, checkpoint: Checkpoint): boolean {
  const { signature, ...fields } = checkpoint;
  const expected = Buffer.from(signCheckpoint(key, fields), 'hex');
  const given = Buffer.from(signature, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export interface CheckpointDeps {
  db: Db;
  secrets: SecretKeys;
}

/**
 * Signs the environment's current head. With `everyMs`, only when the head moved since the last
 * checkpoint and that one is at least `everyMs` old. The head row is locked while the checkpoint is
 * written, so checkpoints follow appends in order and two writers never take the same `seq`.
 * Answers null when nothing was written (no events yet, or not due).
 */
export async function writeCheckpoint(
  deps: CheckpointDeps,
  environment: string,
  now: Date,
  options: { everyMs?: number } = {},
): Promise<Checkpoint | null> {
  const { key, keyId } = checkpointKey(deps.secrets);
  return deps.db.transaction().execute(async (tx) => {
    const head = await tx
      .selectFrom('audit_heads')
      .select('last_index')
      .where('environment', '=', environment)
      .forUpdate()
      .executeTakeFirst();
    if (!head || head.last_index === 0) return null;
    const last = await tx
      .selectFrom('audit_checkpoints')
      .select(['seq', 'event_count', 'created_at'])
      .where('environment', '=', environment)
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    if (options.everyMs !== undefined && last) {
      const moved = head.last_index !== last.event_count;
      if (!moved || now.getTime() - last.created_at.getTime() < options.everyMs) return null;
    }
    const event = await tx
      .selectFrom('audit_events')
      .select(['id', 'hash'])
      .where('environment', '=', environment)
      .where('chain_index', '=', head.last_index)
      .executeTakeFirst();
    // A head that points past the events is what verify reports; signing it would bless it.
    if (!event) return null;
    const fields = {
      id: newId('ckp', now.getTime()),
      environment,
      seq: (last?.seq ?? 0) + 1,
      event_id: event.id,
      event_count: head.last_index,
      event_hash: event.hash,
      created_at: now.toISOString(),
      key_id: keyId,
    };
    const checkpoint: Checkpoint = { ...fields, signature: signCheckpoint(key, fields) };
    await tx.insertInto('audit_checkpoints').values(checkpoint).execute();
    return checkpoint;
  });
}

/**
 * The periodic writer (run by the scheduler): a checkpoint for each environment whose head moved
 * and whose last checkpoint is at least `everySeconds` old. A read without locks skips the
 * environments with nothing to do, so an idle install never takes the head lock.
 */
export async function writeDueCheckpoints(
  deps: CheckpointDeps,
  now: Date,
  everySeconds: number,
): Promise<Checkpoint[]> {
  const everyMs = everySeconds * 1000;
  const heads = await deps.db
    .selectFrom('audit_heads as h')
    .leftJoin(
      (eb) =>
        eb
          .selectFrom('audit_checkpoints')
          .select(['environment'])
          .select((s) => [s.fn.max('event_count').as('event_count'), s.fn.max('created_at').as('created_at')])
          .groupBy('environment')
          .as('c'),
      (join) => join.onRef('c.environment', '=', 'h.environment'),
    )
    .select(['h.environment', 'h.last_index', 'c.event_count', 'c.created_at'])
    .where('h.last_index', '>', 0)
    .execute();
  const written: Checkpoint[] = [];
  for (const head of heads) {
    const due =
      head.created_at === null ||
      (head.event_count !== head.last_index &&
        now.getTime() - new Date(head.created_at).getTime() >= everyMs);
    if (!due) continue;
    const checkpoint = await writeCheckpoint(deps, head.environment, now, { everyMs });
    if (checkpoint) written.push(checkpoint);
  }
  return written;
}

export interface AuditVerification extends VerifyResult {
  checkpoints_checked: number;
  first_broken_checkpoint?: { id: string; created_at: string; reason: CheckpointProblem };
}

/**
 * Re-walks the chain, then checks every checkpoint in order: its key and signature, that it follows
 * the previous one (next `seq`, no fewer events), and that the chain still holds the checkpointed
 * event, with that hash, at that position. The first checkpoint that fails is reported.
 */
export async function verifyAuditTrail(
  db: Executor,
  secrets: SecretKeys,
  environment: string,
): Promise<AuditVerification> {
  const checkpoints = (
    await db
      .selectFrom('audit_checkpoints')
      .selectAll()
      .where('environment', '=', environment)
      .orderBy('seq')
      .execute()
  ).map(toCheckpoint);
  const watched = new Set(checkpoints.map((c) => c.event_count));
  const { seen, ...chain } = await verifyAuditChain(db, environment, { watch: watched });
  if (checkpoints.length === 0) return { ...chain, checkpoints_checked: 0 };

  const { key, keyId } = checkpointKey(secrets);
  let checked = 0;
  let previous: Checkpoint | null = null;
  for (const checkpoint of checkpoints) {
    const problem = checkpointProblem(checkpoint, previous, key, keyId, seen);
    if (problem) {
      return {
        ...chain,
        ok: false,
        checkpoints_checked: checked,
        first_broken_checkpoint: { id: checkpoint.id, created_at: checkpoint.created_at, reason: problem },
      };
    }
    checked += 1;
    previous = checkpoint;
  }
  return { ...chain, checkpoints_checked: checked };
}

function checkpointProblem(
  checkpoint: Checkpoint,
  previous: Checkpoint | null,
  key: Buffer,
  keyId: string,
  seen: Map<number, { id: string; hash: string }>,
): CheckpointProblem | null {
  // Told apart from tampering: a changed TESSERA_SECRET_KEY cannot check what the old one signed.
  if (checkpoint.key_id !== keyId) return 'signed_with_another_key';
  if (!signatureHolds(key, checkpoint)) return 'bad_signature';
  const expectedSeq = (previous?.seq ?? 0) + 1;
  if (checkpoint.seq !== expectedSeq || checkpoint.event_count < (previous?.event_count ?? 0)) {
    return 'out_of_sequence';
  }
  const event = seen.get(checkpoint.event_count);
  if (!event) return 'event_missing';
  if (event.id !== checkpoint.event_id || event.hash !== checkpoint.event_hash) return 'event_mismatch';
  return null;
}
