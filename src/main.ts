#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from './config.ts';
import { closeGracefully, createHttpServer } from './http/server.ts';
import { createApiKey, listApiKeys, revokeApiKey } from './modules/api-keys/service.ts';
import { runAuditCommand } from './modules/audit/cli.ts';
import { runStripeCommand } from './modules/billing/cli.ts';
import { runUsageCommand } from './modules/metering/cli.ts';
import { systemContext } from './platform/context.ts';
import { openDatabase } from './platform/db.ts';
import { createLogger } from './platform/logger.ts';
import { migrateDown, migrateToLatest } from './platform/migrate.ts';
import { StartupRefused } from './platform/namespace.ts';
import { startRuntime } from './runtime.ts';

const USAGE = `usage: tessera <command>

  serve                                  run the HTTP API (and, unless RUN_WORKERS=false, the workers)
  worker                                 run only the background workers (outbox dispatch, scheduler, Stripe events)
  migrate [--down]                       apply pending migrations (or roll back the last one)
  keys create --env test|live --scope admin|check [--scope ...] --name NAME
  keys list --env test|live
  keys revoke --env test|live ID
  usage rebuild                          rebuild Redis's usage counters from the ledger
  usage verify                           compare Redis's usage counters with the ledger
  usage dead-letters [--env ENV]         list usage records kept out of the ledger
  usage dead-letters replay|discard ID   append one to the usage stream again, or delete it
  audit checkpoint [--env test|live]     sign a checkpoint of the audit chain head now (every environment by default)
  audit verify [--env test|live]         re-walk the audit chains and check their signed checkpoints
  stripe reconcile --env test|live [--dry-run]
                                         compare Stripe's customers and subscriptions with Tessera's, repair drift, print the report
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === 'help' || command === '--help') {
    process.stdout.write(USAGE);
    return command ? 0 : 2;
  }
  const config = loadConfig();
  switch (command) {
    case 'serve':
      return runServe(config);
    case 'worker':
      return runWorker(config);
    case 'migrate':
      return runMigrate(config, rest);
    case 'keys':
      return runKeys(config, rest);
    case 'usage':
      return runUsage(config, rest);
    case 'audit':
      return runAudit(config, rest);
    case 'stripe':
      return runStripe(config, rest);
    default:
      process.stderr.write(`unknown command '${command}'\n${USAGE}`);
      return 2;
  }
}

async function runServe(config: ReturnType<typeof loadConfig>): Promise<number> {
  const runtime = await startRuntime(config, { defaultMetrics: true });
  const log = runtime.deps.logger;
  const server = createHttpServer(runtime);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.port, config.host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  log.info(
    { port, database: runtime.deps.database.kind, redis: Boolean(runtime.deps.redis) },
    `Tessera listening on http://localhost:${port} (docs at /docs)`,
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down: no new connections, draining in-flight requests');
      await closeGracefully(server, config.shutdownGraceMs, () =>
        log.warn('drain timed out; closing remaining connections'),
      );
      await runtime.close();
      log.info('stopped');
      resolve(0);
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });
}

async function runWorker(config: ReturnType<typeof loadConfig>): Promise<number> {
  const runtime = await startRuntime(config, { workers: true, defaultMetrics: true });
  runtime.deps.logger.info('worker started');
  return new Promise<number>((resolve) => {
    const stop = async () => {
      await runtime.close();
      resolve(0);
    };
    process.once('SIGTERM', () => void stop());
    process.once('SIGINT', () => void stop());
  });
}

async function runMigrate(config: ReturnType<typeof loadConfig>, args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { down: { type: 'boolean', default: false } } });
  const database = await openDatabase(config);
  try {
    const applied = values.down ? await migrateDown(database.db) : await migrateToLatest(database.db);
    process.stdout.write(
      applied.length
        ? `${values.down ? 'rolled back' : 'applied'}: ${applied.join(', ')}\n`
        : 'nothing to do\n',
    );
    return 0;
  } finally {
    await database.close();
  }
}

async function runUsage(config: ReturnType<typeof loadConfig>, args: string[]): Promise<number> {
  const runtime = await startRuntime(config, { workers: false, logger: createLogger('warn') });
  try {
    return await runUsageCommand(runtime, args[0], args.slice(1));
  } finally {
    await runtime.close();
  }
}

async function runAudit(config: ReturnType<typeof loadConfig>, args: string[]): Promise<number> {
  const runtime = await startRuntime(config, { workers: false, logger: createLogger('warn') });
  try {
    return await runAuditCommand(runtime, args);
  } finally {
    await runtime.close();
  }
}

async function runStripe(config: ReturnType<typeof loadConfig>, args: string[]): Promise<number> {
  const runtime = await startRuntime(config, { workers: false, logger: createLogger('warn') });
  try {
    return await runStripeCommand(runtime, args);
  } finally {
    await runtime.close();
  }
}

async function runKeys(config: ReturnType<typeof loadConfig>, args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      env: { type: 'string', default: 'test' },
      scope: { type: 'string', multiple: true },
      name: { type: 'string' },
    },
  });
  const environment = values.env;
  if (environment !== 'test' && environment !== 'live') {
    process.stderr.write('--env must be test or live\n');
    return 2;
  }
  const runtime = await startRuntime(
    { ...config, adminKey: undefined },
    { workers: false, logger: createLogger('warn') },
  );
  const ctx = systemContext(runtime.deps, environment, { type: 'system', id: null, name: 'cli' });
  try {
    switch (sub) {
      case 'create': {
        const scopes = values.scope ?? ['admin'];
        if (!values.name || scopes.some((s) => s !== 'admin' && s !== 'check')) {
          process.stderr.write('keys create needs --name and --scope admin|check\n');
          return 2;
        }
        const key = await createApiKey(ctx, {
          name: values.name,
          scopes: scopes as Array<'admin' | 'check'>,
        });
        process.stdout.write(`${JSON.stringify(key, null, 2)}\n`);
        process.stderr.write('The secret is shown this once; store it now.\n');
        return 0;
      }
      case 'list': {
        let cursor: string | undefined;
        do {
          const pageOf = await listApiKeys(ctx, { limit: 200, cursor });
          for (const k of pageOf.data)
            process.stdout.write(
              `${k.id}\t${k.prefix}…\t${k.scopes.join(',')}\t${k.revoked_at ? 'revoked' : 'active'}\t${k.name}\n`,
            );
          cursor = pageOf.next_cursor ?? undefined;
        } while (cursor);
        return 0;
      }
      case 'revoke': {
        const id = positionals[0];
        if (!id) {
          process.stderr.write('keys revoke needs the key id\n');
          return 2;
        }
        await revokeApiKey(ctx, id);
        process.stdout.write(`revoked ${id}\n`);
        return 0;
      }
      default:
        process.stderr.write(USAGE);
        return 2;
    }
  } finally {
    await runtime.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof StartupRefused)
      process.stderr.write(`tessera: ${err.message}\n`);
    else
      process.stderr.write(`tessera: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
