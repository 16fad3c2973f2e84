#!/usr/bin/env node
/**
 * Operator commands that work on the data directory directly, with the server running or not
 * (SQLite WAL lets both write). For the admin who is locked out of the web UI.
 */
import fs from 'node:fs';
import { AgeError, generateIdentity } from '../backup/ageFormat';
import { BackupError } from '../backup/backupFormat';
import { BackupKeyError, loadBackupKey } from '../backup/backupKey';
import { restoreDatabase, restoreVolumes } from '../backup/restore';
import { ConfigError, loadConfig } from '../config';
import { createLogger } from '../lib/logger';
import { buildPlatform } from '../platform';
import { openDatabase } from '../db/database';
import { migrateWithCopy, DatabaseTooNewError, MigrationFailedError } from '../db/migrations';
import { AuditRepository } from '../db/repositories/auditRepository';
import { ApiTokenRepository } from '../db/repositories/apiTokenRepository';
import { SessionRepository } from '../db/repositories/sessionRepository';
import { UserRepository } from '../db/repositories/userRepository';
import { ApiTokenService } from '../domain/apiTokens';
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
  backup                      Take a backup now (the server may be running): the database and
                              every workspace volume, encrypted to CLAWLOOPS_BACKUP_KEY_FILE,
                              into CLAWLOOPS_BACKUP_DIR, with its progress; prints its id.
  backup-keygen <file>        Create a backup key (an age identity file, mode 600) to set as
                              CLAWLOOPS_BACKUP_KEY_FILE. Keep a copy away from this machine.
  restore <backup folder>     Restore a whole installation from a backup into an empty data
                              directory, onto an engine without its volumes: checks every part
                              first, then the database, then each user's volume. Run it with
                              the server stopped and CLAWLOOPS_BACKUP_KEY_FILE set.

Reads CLAWLOOPS_DATA_DIR (default ./data) like the server.`;

async function run(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    console.log(USAGE);
    return command ? 0 : 2;
  }
  if (command === 'backup-keygen') return backupKeygen(args);
  if (command === 'restore') return restore(args);
  if (command === 'backup') return backup(args);
  const config = loadConfig(process.env);
  const db = openDatabase(config.dataDir);
  try {
    migrateWithCopy(db, config.dataDir, systemClock.now());
    const clock = systemClock;
    const userRepo = new UserRepository(db);
    const hasher = new ScryptPasswordHasher();
    const sessions = new SessionService(new SessionRepository(db), userRepo, clock, {
      idleTimeoutMs: config.sessionIdleTimeoutMs,
      maxAgeMs: config.sessionMaxAgeMs,
    });
    const audit = new AuditLog(new AuditRepository(db), clock);
    const transact = sqliteTransactor(db);
    const tokens = new ApiTokenService(new ApiTokenRepository(db), userRepo, audit, transact, clock);
    const admin = new UserAdminService(userRepo, new UserFactory(userRepo, hasher, clock), hasher, sessions, tokens, audit, transact, clock);

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

function backupKeygen(args: string[]): number {
  if (args.length !== 1 || !args[0]) {
    console.error('backup-keygen needs the file to write.\n');
    console.error(USAGE);
    return 2;
  }
  const { text, identity } = generateIdentity();
  try {
    fs.writeFileSync(args[0], text, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    console.error(`Could not write ${args[0]}: ${(err as NodeJS.ErrnoException).code === 'EEXIST' ? 'it exists already (a key is never overwritten)' : (err as Error).message}`);
    return 1;
  }
  console.log(`Backup key written to ${args[0]} (public key ${identity.recipient}).`);
  console.log('Set CLAWLOOPS_BACKUP_KEY_FILE to it, and keep a copy away from this machine: without it no backup can be read.');
  return 0;
}

async function backup(args: string[]): Promise<number> {
  if (args.length !== 0) {
    console.error('backup takes no arguments (the folder is CLAWLOOPS_BACKUP_DIR).\n');
    console.error(USAGE);
    return 2;
  }
  const config = loadConfig(process.env);
  if (!config.backup.keyFile) {
    console.error('Set CLAWLOOPS_BACKUP_KEY_FILE to the backup key (npm run admin -- backup-keygen <file> makes one).');
    return 2;
  }
  // Its own file helpers, named apart from a running server's and removed when done.
  const platform = buildPlatform(config, createLogger('warn'), { fileHelperNamePrefix: 'clawloops-files-cli' });
  try {
    let shown = '';
    const summary = await platform.backups.create((p) => {
      const line = p.step === 'volumes' && p.username ? `Volume of ${p.username} (${p.partsDone + 1}/${p.partsTotal})` : p.step === 'database' ? 'Database' : 'Finishing';
      if (line !== shown) console.log(`${line} …`);
      shown = line;
    });
    new AuditLog(new AuditRepository(platform.db), systemClock).record({ action: 'backup.create', actor: CLI_ACTOR, origin: NO_ORIGIN, target: { type: 'backup', id: summary.id, label: summary.id }, detail: { bytes: summary.bytes, parts: summary.parts } });
    console.log(`Backup ${summary.id} written to ${config.backup.dir}: ${summary.parts} part(s), ${summary.bytes} bytes, ${summary.users.length} account(s).`);
    return 0;
  } finally {
    await platform.volumes.closeOwn().catch(() => undefined);
    // A failed backup mails the administrators: given a few seconds before the process ends.
    await platform.mail.drain(10_000);
    platform.close();
  }
}

async function restore(args: string[]): Promise<number> {
  if (args.length !== 1 || !args[0]) {
    console.error('restore needs the backup folder.\n');
    console.error(USAGE);
    return 2;
  }
  const folder = args[0];
  const config = loadConfig(process.env);
  if (!config.backup.keyFile) {
    console.error('Set CLAWLOOPS_BACKUP_KEY_FILE to the key the backup was made with.');
    return 2;
  }
  const identity = loadBackupKey(config.backup.keyFile);
  console.log(`Checking every part of ${folder} …`);
  const manifest = await restoreDatabase(folder, identity, config.dataDir);
  console.log(`Database restored into ${config.dataDir}: ${manifest.users.length} account(s), from ${manifest.createdAt} (ClawLoops ${manifest.clawloopsVersion}).`);
  const platform = buildPlatform(config, createLogger('warn'));
  try {
    await platform.runtimes.claimInstallation();
    const volumes = await restoreVolumes(
      folder,
      identity,
      manifest,
      { prepare: (userId) => platform.runtimes.prepareResources(userId), volumes: platform.volumes, volumeRoot: config.files.volumeRoot },
      (username, done, total) => {
        if (username) console.log(`Volume ${done + 1}/${total}: ${username}`);
      },
    );
    console.log(`Restored ${volumes} volume(s). Start the server: members sign in with their own passwords.`);
    return 0;
  } finally {
    await platform.volumes.closeAll().catch(() => 0);
    platform.close();
  }
}

run(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    if (err instanceof ConfigError || err instanceof DatabaseTooNewError || err instanceof MigrationFailedError || err instanceof BackupError || err instanceof AgeError || err instanceof BackupKeyError) {
      console.error(err.message);
    }
    else if (err instanceof AppError) console.error(err.message);
    else console.error(err);
    process.exit(1);
  },
);
