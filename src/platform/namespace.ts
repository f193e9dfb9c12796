/**
 * One Redis namespace (key prefix) belongs to one deployment, that is one database. Two
 * deployments on one Redis database with the same prefix would share usage streams, counters and
 * invalidations; so each marks `<prefix>namespace` with its database's identity at start-up and
 * refuses to start when the mark is another's.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { sql } from 'kysely';
import type { Db } from './db.ts';

/** Start-up refused on purpose: main prints the message as one line, without a stack. */
export class StartupRefused extends Error {}

export class NamespaceTaken extends StartupRefused {
  constructor(
    readonly prefix: string,
    readonly holder: string,
    readonly own: string,
  ) {
    super(
      `Redis prefix "${prefix}" belongs to another deployment (database ${holder}; this one is ${own}): set REDIS_PREFIX to a prefix of this deployment's own, or use another Redis database`,
    );
  }
}

/** The key that names the deployment owning the prefix. */
export function namespaceKey(prefix: string): string {
  return `${prefix}namespace`;
}

/** The database's deployment id, made at the first start-up (random, kept in `deployment_identity`). */
export async function deploymentId(db: Db): Promise<string> {
  await sql`INSERT INTO deployment_identity (singleton, id) VALUES (true, ${randomUUID()})
    ON CONFLICT (singleton) DO NOTHING`.execute(db);
  const { rows } = await sql<{ id: string }>`SELECT id FROM deployment_identity`.execute(db);
  return rows[0]!.id;
}

/** Marks the namespace as this deployment's, or throws NamespaceTaken when it is another's. */
export async function claimNamespace(redis: Redis, prefix: string, id: string): Promise<void> {
  const key = namespaceKey(prefix);
  // Two commands rather than SET NX GET, which needs Redis 7. A mark that vanished in between
  // (Redis lost its data just then) is claimed again.
  for (;;) {
    if ((await redis.set(key, id, 'NX')) === 'OK') return;
    const holder = await redis.get(key);
    if (holder === id) return;
    if (holder !== null) throw new NamespaceTaken(prefix, holder, id);
  }
}
