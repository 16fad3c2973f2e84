import { ConfigError, loadConfig } from './config';
import { DatabaseTooNewError, MigrationFailedError } from './db/migrations';
import { createLogger } from './lib/logger';
import { InstallationMismatchError } from './domain/installation';
import { InstallationConflictError, startServer } from './server';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`ClawLoops cannot start.\n${err.message}\nSee docs/configure.md for every variable.\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  // A promise nobody awaited must not end the process (Node's default): every request and every
  // runtime in flight would go with it. It is a bug to fix, so it is logged loudly, and we keep serving.
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: reason instanceof Error ? { message: reason.message, stack: reason.stack } : String(reason) }, 'unhandled promise rejection (bug): logged, still serving');
  });
  try {
    const running = await startServer(config, logger);
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      process.once(signal, () => {
        void running.shutdown(signal).then(() => process.exit(0));
      });
    }
  } catch (err) {
    if (err instanceof DatabaseTooNewError) {
      logger.fatal({ found: err.found, supported: err.supported }, err.message);
    } else if (err instanceof InstallationConflictError || err instanceof InstallationMismatchError || err instanceof MigrationFailedError) {
      logger.fatal(err.message);
    } else {
      logger.fatal({ err }, 'ClawLoops failed to start');
    }
    process.exitCode = 1;
    logger.flush();
    setImmediate(() => process.exit(1));
  }
}

void main();
