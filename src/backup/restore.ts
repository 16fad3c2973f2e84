import fs from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import Database from 'better-sqlite3';
import { DATABASE_FILE_NAME } from '../db/database';
import type { WorkspaceVolumes } from '../files/workspaceVolumes';
import type { AgeIdentity } from './ageFormat';
import { BackupError, readPart, type BackupManifest } from './backupFormat';
import { verifyBackup } from './backupService';

/**
 * Restoring a whole appliance onto a fresh machine, in two steps around building the platform:
 * first the database (after every part of the backup was read through and checked, so a
 * corrupted part, a foreign key or a wrong backup changes nothing), then every volume, each into
 * a volume the engine did not have.
 */

/** Checks the whole backup, then writes its database into an empty data directory. */
export async function restoreDatabase(backupDir: string, identity: AgeIdentity, dataDir: string): Promise<BackupManifest> {
  const { manifest } = await verifyBackup(backupDir, identity);
  if (manifest.trigger === 'offboarding') {
    throw new BackupError('RESTORE_NOT_A_FULL_BACKUP', 'This is the copy of one deleted account\'s workspace, not of an installation: a full restore needs a backup with the database.');
  }
  const target = path.join(dataDir, DATABASE_FILE_NAME);
  if (fs.existsSync(target)) {
    const existing = new Database(target, { readonly: true });
    try {
      const users = (existing.prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'users'").get() as { n: number }).n;
      const rows = users ? (existing.prepare('SELECT COUNT(*) AS n FROM users').get() as { n: number }).n : 0;
      if (rows > 0) throw new BackupError('RESTORE_TARGET_NOT_EMPTY', `${dataDir} already holds an installation with ${rows} account(s): a full restore goes into an empty data directory.`);
    } finally {
      existing.close();
    }
  }
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const part = manifest.parts.find((p) => p.kind === 'database');
  if (!part) throw new BackupError('BACKUP_INCOMPLETE', 'The backup has no database part.');
  const partial = `${target}.restoring`;
  try {
    await readPart(backupDir, part, identity, fs.createWriteStream(partial, { mode: 0o600 }));
    for (const suffix of ['', '-wal', '-shm']) fs.rmSync(`${target}${suffix}`, { force: true });
    fs.renameSync(partial, target);
  } finally {
    fs.rmSync(partial, { force: true });
  }
  return manifest;
}

export interface VolumeRestoreDeps {
  /** Makes a user's runtime resources on the engine; `fresh` false when the engine had the volume already. */
  prepare(userId: string): Promise<{ fresh: boolean }>;
  volumes: WorkspaceVolumes;
  volumeRoot: string;
}

/** Unpacks every volume part of the backup into a new volume of its user; progress per user. */
export async function restoreVolumes(
  backupDir: string,
  identity: AgeIdentity,
  manifest: BackupManifest,
  deps: VolumeRestoreDeps,
  onUser: (username: string, done: number, total: number) => void = () => {},
): Promise<number> {
  const parts = manifest.parts.filter((p) => p.kind === 'volume');
  let done = 0;
  for (const part of parts) {
    const user = manifest.users.find((u) => u.runtimeId === part.runtimeId);
    if (!user) throw new BackupError('BACKUP_INCOMPLETE', `The volume part ${part.name} belongs to no user of the manifest.`);
    onUser(user.username, done, parts.length);
    const { fresh } = await deps.prepare(user.id);
    if (!fresh) {
      throw new BackupError('RESTORE_VOLUME_EXISTS', `The engine already has a volume for ${user.username}: a full restore goes onto an engine without this installation's volumes.`);
    }
    const access = await deps.volumes.acquire(user.id, 'stream');
    try {
      const archive = new PassThrough();
      const reading = readPart(backupDir, part, identity, archive);
      await Promise.all([reading, access.writeArchive(path.posix.dirname(deps.volumeRoot), archive, access.signal)]);
    } finally {
      access.release();
    }
    done++;
  }
  onUser('', done, parts.length);
  return done;
}
