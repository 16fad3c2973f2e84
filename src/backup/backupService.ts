import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import Database from 'better-sqlite3';
import type { Db } from '../db/database';
import { schemaVersion } from '../db/migrations';
import type { Installation } from '../domain/installation';
import { RESTORE_DIR } from '../files/agent/protocol';
import { STAGING_DIR } from '../files/staging';
import type { VolumeGate } from '../files/volumeGate';
import type { Clock } from '../lib/clock';
import type { Logger } from '../lib/logger';
import type { AgeIdentity } from './ageFormat';
import { PartSealer } from './sealedParts';
import type { SealResult } from './sealProtocol';
import {
  BACKUP_FORMAT,
  BackupError,
  DATABASE_PART,
  MANIFEST_PART,
  backupPath,
  isBackupId,
  listBackupIds,
  partialPath,
  readManifest,
  readPart,
  sweepPartials,
  syncToDisk,
  volumePart,
  writePart,
  type BackupManifest,
  type BackupPart,
  type BackupTrigger,
} from './backupFormat';

export interface BackupProgress {
  step: 'database' | 'volumes' | 'finishing';
  partsDone: number;
  partsTotal: number;
  /** Plaintext bytes written so far. */
  bytesDone: number;
  username: string | null;
}

export interface BackupSummary {
  id: string;
  createdAt: string;
  trigger: BackupTrigger;
  bytes: number;
  users: string[];
  parts: number;
}

export interface BackupServiceDeps {
  db: Db;
  /** Where the database snapshot is staged before it is encrypted: inside the data directory, never the backup folder (a NAS). */
  dataDir: string;
  backupDir: string;
  /** Null when no key is configured: backups are then refused with the way to configure one. */
  identity: AgeIdentity | null;
  /** Through the gate: a volume being restored is read once its restore has finished. */
  volumes: VolumeGate;
  /** The volume's root as the file helpers see it (its parent is where a tar of it unpacks). */
  volumeRoot: string;
  installation: Installation;
  /**
   * Freezes the user's running runtime while its volume is read, so the volume is one moment
   * (what a power cut would leave: OpenClaw's SQLite state recovers from that); null when it does
   * not run. Resolves with the function that lets it go on.
   */
  freeze: (userId: string) => Promise<(() => Promise<void>) | null>;
  version: string;
  clock: Clock;
  logger: Logger;
  /** Told of every backup that started and failed (administrators are mailed); must not throw. */
  onFailed?: (failure: { trigger: BackupTrigger; reason: string; startedAt: number }) => void;
}

/** Rows no restore needs and no backup should carry: sign-ins and keys are issued again. */
const SCRUB = `
  DELETE FROM sessions;
  DELETE FROM workspace_tickets;
  DELETE FROM workspace_sessions;
  UPDATE runtimes SET container_id = NULL, model_key_hash = NULL, seeded_config_hash = NULL;
`;

const CONSISTENCY =
  'The database is one consistent snapshot (SQLite backup API) taken first; each volume is read after it, one at a time. ' +
  'A stopped runtime\u2019s volume does not change meanwhile; a running runtime is frozen while its volume is read, so its files are ' +
  'all of one moment, as a power cut would leave them (OpenClaw\u2019s own SQLite state recovers from that); an upload in flight is ' +
  'in it entirely or not at all.';

/**
 * Online backups of everything a team keeps in ClawLoops: the control-plane database (snapshot,
 * scrubbed of sessions and keys), every user's workspace volume (streamed from the engine through
 * the user's file helper, the file manager's staging folders left out) and a manifest with a
 * SHA-256 per part, each part encrypted to the operator's age key. One backup at a time.
 */
export class BackupService {
  private running: Promise<BackupSummary> | null = null;
  /**
   * Manifests already read, by backup id: the console asks for the list every second while a
   * backup runs, and a manifest never changes once its folder was renamed into place.
   */
  private readonly summaries = new Map<string, Pick<BackupSummary, 'createdAt' | 'trigger' | 'users' | 'parts'>>();
  private progress: BackupProgress | null = null;
  /** Volume parts are sealed on another core; started with the service when there is a key to back up with. */
  private readonly sealer = new PartSealer();

  constructor(private readonly deps: BackupServiceDeps) {
    if (deps.identity) void this.sealer.start().catch((err: unknown) => deps.logger.warn({ err: (err as Error).message }, 'the backup sealing worker did not start; the first backup tries again'));
    // A backup folder that is not there yet (a NAS not mounted) must not keep the platform from
    // starting: each backup makes it, and says so when it cannot.
    try {
      const swept = sweepPartials(deps.backupDir);
      if (swept > 0) deps.logger.warn({ swept }, 'removed incomplete backups left by an interrupted run');
    } catch (err) {
      deps.logger.warn({ backupDir: deps.backupDir, err: (err as Error).message }, 'the backup folder cannot be read now; backups will say why when they run');
    }
  }

  /** Shutdown: the sealing worker goes (it never holds the process open, but tests close platforms). */
  close(): Promise<void> {
    return this.sealer.close();
  }

  get current(): BackupProgress | null {
    return this.progress;
  }

  hasKey(): boolean {
    return this.deps.identity !== null;
  }

  /** Removes a complete backup folder (retention, or an administrator). */
  remove(id: string): void {
    if (!isBackupId(id)) throw new BackupError('BACKUP_NOT_FOUND', `No backup ${id}.`);
    const dir = backupPath(this.deps.backupDir, id);
    if (!fs.existsSync(dir)) throw new BackupError('BACKUP_NOT_FOUND', `No backup ${id}.`);
    fs.rmSync(dir, { recursive: true, force: true });
    this.summaries.delete(id);
  }

  /** The operator's key; throws BACKUP_KEY_MISSING, with how to make one, when none is configured. */
  key(): AgeIdentity {
    if (!this.deps.identity) {
      throw new BackupError(
        'BACKUP_KEY_MISSING',
        'No backup key is configured. Create one with `npm run admin -- backup-keygen <file>` (or `age-keygen -o <file>`), keep a copy somewhere safe, and set CLAWLOOPS_BACKUP_KEY_FILE to it.',
      );
    }
    return this.deps.identity;
  }

  /** Starts a backup; rejects at once with BACKUP_RUNNING while one runs. */
  create(onProgress: (progress: BackupProgress) => void = () => {}, trigger: BackupTrigger = 'manual'): Promise<BackupSummary> {
    return this.start(trigger, null, onProgress);
  }

  /**
   * The workspace of an account about to be deleted, as a backup of its own (no database part):
   * what an administrator can still get back after a mistaken delete, until it ages out.
   */
  archiveUser(userId: string): Promise<BackupSummary> {
    return this.start('offboarding', userId, () => {});
  }

  private start(trigger: BackupTrigger, onlyUser: string | null, onProgress: (progress: BackupProgress) => void): Promise<BackupSummary> {
    const identity = this.key();
    if (this.running) throw new BackupError('BACKUP_RUNNING', 'A backup is already running; wait for it to finish.');
    const startedAt = this.deps.clock.now();
    const work = this.write(identity, trigger, onlyUser, (p) => {
      this.progress = p;
      onProgress(p);
    }).finally(() => {
      this.running = null;
      this.progress = null;
    });
    this.running = work;
    // The caller handles the rejection too; this branch only tells, and never rejects itself.
    work.catch((err: unknown) => {
      const reason = err instanceof BackupError ? `${err.code}: ${err.message}` : (err as Error).message;
      try {
        this.deps.onFailed?.({ trigger, reason, startedAt });
      } catch (notifyErr) {
        this.deps.logger.warn({ err: (notifyErr as Error).message }, 'telling of a failed backup failed');
      }
    });
    return work;
  }

  private async write(identity: AgeIdentity, trigger: BackupTrigger, onlyUser: string | null, report: (progress: BackupProgress) => void): Promise<BackupSummary> {
    const { db, clock } = this.deps;
    const now = new Date(clock.now());
    const id = `${now.toISOString().replace(/[-:]/g, '').slice(0, 15)}Z-${randomBytes(3).toString('hex')}`;
    const folder = partialPath(this.deps.backupDir, id);
    try {
      fs.mkdirSync(this.deps.backupDir, { recursive: true, mode: 0o700 });
      fs.mkdirSync(folder, { mode: 0o700 });
    } catch (err) {
      throw new BackupError('BACKUP_FOLDER_UNUSABLE', `The backup folder ${this.deps.backupDir} cannot be written: ${(err as Error).message}.`);
    }
    try {
      const users = (
        db
          .prepare('SELECT u.id, u.username, u.role, u.status, r.id AS runtimeId FROM users u LEFT JOIN runtimes r ON r.user_id = u.id ORDER BY u.username')
          .all() as BackupManifest['users']
      ).filter((u) => onlyUser === null || u.id === onlyUser);
      if (onlyUser !== null && users.length === 0) throw new BackupError('BACKUP_NOT_FOUND', 'No such account.');
      const withVolumes = users.filter((u) => u.runtimeId !== null);
      const withDatabase = onlyUser === null;
      const total = (withDatabase ? 1 : 0) + withVolumes.length;
      let bytesDone = 0;
      const parts: BackupPart[] = [];
      if (withDatabase) {
        report({ step: 'database', partsDone: 0, partsTotal: total, bytesDone, username: null });
        parts.push(await this.writeDatabase(folder, identity));
        bytesDone += parts[0]?.plainBytes ?? 0;
      }

      for (const user of withVolumes) {
        report({ step: 'volumes', partsDone: parts.length, partsTotal: total, bytesDone, username: user.username });
        const part = await this.writeVolume(folder, identity, user.id, user.runtimeId ?? '', user.username);
        parts.push(part);
        bytesDone += part.plainBytes;
      }

      report({ step: 'finishing', partsDone: parts.length, partsTotal: total, bytesDone, username: null });
      const manifest: BackupManifest = {
        format: BACKUP_FORMAT,
        id,
        createdAt: now.toISOString(),
        clawloopsVersion: this.deps.version,
        schemaVersion: schemaVersion(db),
        installation: this.deps.installation,
        recipient: identity.recipient,
        trigger,
        users,
        parts,
        consistency: CONSISTENCY,
      };
      const source = new PassThrough();
      source.end(Buffer.from(JSON.stringify(manifest, null, 2)));
      await writePart(source, path.join(folder, MANIFEST_PART), identity.publicRaw);
      // The parts' names first, then the rename that makes the backup complete.
      await syncToDisk(folder);
      fs.renameSync(folder, backupPath(this.deps.backupDir, id));
      await syncToDisk(this.deps.backupDir);
      const bytes = parts.reduce((sum, p) => sum + p.bytes, 0);
      this.deps.logger.info({ backup: id, parts: parts.length, bytes }, 'backup written');
      return { id, createdAt: manifest.createdAt, trigger, bytes, users: users.map((u) => u.username), parts: parts.length };
    } catch (err) {
      fs.rmSync(folder, { recursive: true, force: true });
      throw err;
    }
  }

  private async writeDatabase(folder: string, identity: AgeIdentity): Promise<BackupPart> {
    // The snapshot is plaintext for a moment: next to the live database, never in the backup folder.
    const snapshot = path.join(this.deps.dataDir, `.backup-${path.basename(folder)}.sqlite`);
    try {
      await this.deps.db.backup(snapshot);
      const copy = new Database(snapshot);
      try {
        copy.exec(SCRUB);
        copy.exec('VACUUM');
      } finally {
        copy.close();
      }
      const written = await writePart(fs.createReadStream(snapshot), path.join(folder, DATABASE_PART), identity.publicRaw);
      return { name: DATABASE_PART, kind: 'database', runtimeId: null, username: null, ...written };
    } finally {
      fs.rmSync(snapshot, { force: true });
    }
  }

  private async writeVolume(folder: string, identity: AgeIdentity, userId: string, runtimeId: string, username: string): Promise<BackupPart> {
    await this.deps.volumes.free(userId);
    const access = await this.deps.volumes.acquire(userId, 'stream');
    // After the helper is up: the runtime stays frozen only while its files are read.
    const thaw = await this.deps.freeze(userId);
    try {
      const name = volumePart(runtimeId);
      const file = path.join(folder, name);
      const leaveOut = leftOutOfBackups(path.posix.basename(this.deps.volumeRoot));
      // Straight from the engine's socket where it is on this machine: the cheapest read there is.
      const request = access.archiveRequest(this.deps.volumeRoot);
      let written: SealResult | null;
      if (request) written = await this.sealer.sealEngineArchive(request, leaveOut, file, identity.publicRaw, access.signal);
      else {
        const archive = await access.readArchive(this.deps.volumeRoot);
        written = archive ? await this.sealer.seal(archive, leaveOut, file, identity.publicRaw) : null;
      }
      if (!written) throw new BackupError('BACKUP_VOLUME_UNREADABLE', `The volume of ${username} could not be read.`);
      return { name, kind: 'volume', runtimeId, username, ...written };
    } finally {
      await thaw?.().catch((err: unknown) => this.deps.logger.error({ username, err: (err as Error).message }, 'could not let a runtime go on after its backup'));
      access.release();
    }
  }

  /** Complete backups, newest first, from their manifests (a backup this key cannot read is listed as such). */
  async list(): Promise<(BackupSummary & { readable: boolean })[]> {
    const identity = this.key();
    const out: (BackupSummary & { readable: boolean })[] = [];
    for (const id of listBackupIds(this.deps.backupDir)) {
      const dir = backupPath(this.deps.backupDir, id);
      const bytes = fs.readdirSync(dir).reduce((sum, name) => sum + fs.statSync(path.join(dir, name)).size, 0);
      const summary = await this.manifestSummary(id, dir, identity);
      out.push(summary ? { id, ...summary, bytes, readable: true } : { id, createdAt: '', trigger: 'manual', bytes, users: [], parts: 0, readable: false });
    }
    return out;
  }

  /**
   * What a complete backup's manifest says, read once (see `summaries`). One that cannot be read
   * is tried again next time (the key may be replaced meanwhile).
   */
  private async manifestSummary(id: string, dir: string, identity: AgeIdentity): Promise<Pick<BackupSummary, 'createdAt' | 'trigger' | 'users' | 'parts'> | null> {
    const known = this.summaries.get(id);
    if (known) return known;
    try {
      const manifest = await readManifest(dir, identity);
      const summary = { createdAt: manifest.createdAt, trigger: manifest.trigger ?? 'manual', users: manifest.users.map((u) => u.username), parts: manifest.parts.length };
      this.summaries.set(id, summary);
      return summary;
    } catch {
      return null;
    }
  }

  /** Reads every part through: its size and SHA-256 as the manifest says, and decryptable to the end. */
  async verify(id: string): Promise<{ manifest: BackupManifest; parts: { name: string; ok: true }[] }> {
    const identity = this.key();
    if (!isBackupId(id) || !fs.existsSync(backupPath(this.deps.backupDir, id))) throw new BackupError('BACKUP_NOT_FOUND', `No backup ${id}.`);
    return verifyBackup(backupPath(this.deps.backupDir, id), identity);
  }
}

/** Every part of the backup in `dir` read through and checked; throws BackupError or AgeError on the first fault. */
export async function verifyBackup(dir: string, identity: AgeIdentity): Promise<{ manifest: BackupManifest; parts: { name: string; ok: true }[] }> {
  const manifest = await readManifest(dir, identity);
  // An offboarding copy holds one workspace and no database, on purpose.
  if (manifest.trigger !== 'offboarding' && !manifest.parts.some((p) => p.kind === 'database')) throw new BackupError('BACKUP_INCOMPLETE', 'The backup has no database part.');
  for (const user of manifest.users) {
    if (user.runtimeId && !manifest.parts.some((p) => p.kind === 'volume' && p.runtimeId === user.runtimeId)) {
      throw new BackupError('BACKUP_INCOMPLETE', `The manifest lists ${user.username} but the backup has no volume part for them.`);
    }
  }
  const parts: { name: string; ok: true }[] = [];
  for (const part of manifest.parts) {
    await readPart(dir, part, identity, new Writable({ write: (_c, _e, done) => done() }));
    parts.push({ name: part.name, ok: true });
  }
  return { manifest, parts };
}

/**
 * What a backup leaves out of a volume's tar (`rootName` is the volume's folder as the archive
 * names it): the file manager's staging folder (an upload in flight is in the backup entirely,
 * moved into place before the volume was read, or not at all) and what a workspace restore left
 * (volumeSwap.ts).
 */
function leftOutOfBackups(rootName: string): string[] {
  return [`${rootName}/${STAGING_DIR}`, `${rootName}/${RESTORE_DIR}`];
}
