#!/usr/bin/env node
/**
 * Operator commands that work on the data directory directly, with the server running or not
 * (SQLite WAL lets both write). For the admin who is locked out of the web UI.
 */
import { ConfigError, loadConfig } from '../config';
import { openDatabase } from '../db/database';
import { migrate, DatabaseTooNewError } from '../db/migrations';
import { AuditRepository } from '../db/repositories/auditRepository';
import { SessionRepository } from '../db/repositories/sessionRepository';
import { UserRepository } from '../db/repositories/userRepository';
import { AuditLog, CLI_ACTOR, NO_ORIGIN } from '../domain/audit';
import { ScryptPasswordHasher } from '../domain/passwordHasher';
import { SessionService } from '../domain/sessions';
import { sqliteTransactor } from '../domain/transactor';
import { UserAdminService } from '../domain/userAdminService';
import { UserFactory } from '../domain/userFactory';
import { AppError } from '../lib/errors';
import { systemClock } from '../lib/clock';

const USAGE = `Usage: npm run admin -- <command>

Commands:
  reset-password <username>   Set a new temporary password (shown once), require a change at
                              next sign-in, sign the user out everywhere, and re-enable the
                              account if it was disabled.
  list-admins                 List administrator accounts and their status.

Reads CLAWLOOPS_DATA_DIR (default ./data) like the server.`;

async function run(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  const config = loadConfig(process.env);
  const db = openDatabase(config.dataDir);
  try {
    migrate(db);
    const clock = systemClock;
    const userRepo = new UserRepository(db);
    const hasher = new ScryptPasswordHasher();
    const sessions = new SessionService(new SessionRepository(db), userRepo, clock, {
      idleTimeoutMs: config.sessionIdleTimeoutMs,
      maxAgeMs: config.sessionMaxAgeMs,
    });
    const audit = new AuditLog(new AuditRepository(db), clock);
    const transact = sqliteTransactor(db);
    const admin = new UserAdminService(userRepo, new UserFactory(userRepo, hasher, clock), hasher, sessions, audit, transact, clock);

    switch (command) {
      case 'reset-password': {
        if (args.length !== 1 || !args[0]) {
          console.error('reset-password needs exactly one username.\n');
          console.error(USAGE);
          return 2;
        }
        const target = admin.findByUsername(args[0]);
        const { user, temporaryPassword } = await admin.resetPassword(CLI_ACTOR, target.id, NO_ORIGIN);
        if (user.status === 'disabled') admin.update(CLI_ACTOR, user.id, { status: 'active' }, NO_ORIGIN);
        console.log(`Temporary password for ${user.username}: ${temporaryPassword}`);
        console.log('It must be changed at the next sign-in. All of this user\'s sessions were ended.');
        if (user.status === 'disabled') console.log('The account was disabled and has been re-enabled.');
        return 0;
      }
      case 'list-admins': {
        const { items } = admin.list({ role: 'admin', limit: 200, offset: 0 });
        for (const u of items) console.log(`${u.username}\t${u.status}\t${u.displayName}`);
        if (items.length === 0) console.log('No administrator exists yet: start the server and use the setup URL it logs.');
        return 0;
      }
      default:
        console.error(`Unknown command "${command}".\n`);
        console.error(USAGE);
        return 2;
    }
  } finally {
    db.close();
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof DatabaseTooNewError) console.error(err.message);
    else if (err instanceof AppError) console.error(err.message);
    else console.error(err);
    process.exit(1);
  },
);
