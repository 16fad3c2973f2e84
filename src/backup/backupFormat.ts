import fs from 'node:fs';
import path from 'node:path';
import { Transform, Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { AgeDecrypt, AgeEncrypt, type AgeIdentity } from './ageFormat';
import { STREAM_BUFFER, Tally } from './tally';

/**
 * A backup on disk: one folder per backup, every part an age file encrypted to the operator's
 * key, the manifest among them. Readable by hand: `age -d -i key.txt <part>.age` (the database
 * part is an SQLite file, a volume part a tar of the volume). A folder is written as
 * `<id>.partial` and renamed once complete, so a listing never shows half a backup.
 */

export const BACKUP_FORMAT = 'clawloops-backup/1';
export const MANIFEST_PART = 'manifest.json.age';
export const DATABASE_PART = 'database.sqlite.age';
export const volumePart = (runtimeId: string) => `volume-${runtimeId}.tar.age`;
const PARTIAL = '.partial';
const PARTIAL_MAX_AGE_MS = 24 * 60 * 60_000;

export interface BackupPart {
  name: string;
  kind: 'database' | 'volume';
  /** For a volume: whose it is. */
  runtimeId: string | null;
  username: string | null;
  /** Before encryption (the SQLite file, the tar). */
  plainBytes: number;
  /** The encrypted file on disk, and its SHA-256: what verification recomputes. */
  bytes: number;
  sha256: string;
}

/**
 * `offboarding`: one deleted account's workspace, kept for a while (its manifest lists only that
 * user). `upgrade`: taken before an image rollout restarted any runtime; kept like a manual one.
 */
export type BackupTrigger = 'manual' | 'scheduled' | 'offboarding' | 'upgrade';

export interface BackupManifest {
  format: typeof BACKUP_FORMAT;
  id: string;
  createdAt: string;
  clawloopsVersion: string;
  schemaVersion: number;
  installation: { instance: string; id: string };
  /** The age recipient every part is encrypted to. */
  recipient: string;
  /** What took it: an administrator, the schedule (whose retention may remove it), ... */
  trigger: BackupTrigger;
  users: { id: string; username: string; role: string; status: string; runtimeId: string | null }[];
  parts: BackupPart[];
  /** What moment each part belongs to, in words (docs/operate.md#backups). */
  consistency: string;
}

export class BackupError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'BackupError';
  }
}

/** Backup ids are made by us: a timestamp and random hex, nothing a path could be smuggled in. */
export const isBackupId = (id: string) => /^\d{8}T\d{6}Z-[0-9a-f]{6}$/.test(id);

export const backupPath = (dir: string, id: string) => path.join(dir, id);
export const partialPath = (dir: string, id: string) => path.join(dir, `${id}${PARTIAL}`);

/** Folders of complete backups, newest first; partial ones (a crash mid-backup) are not listed. */
export function listBackupIds(dir: string): string[] {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter(isBackupId).sort().reverse();
}

/**
 * Removes what a crash mid-backup left behind; how many. Only folders untouched for a day: the
 * backup folder may be shared (a NAS) with another machine whose backup is being written now.
 */
export function sweepPartials(dir: string, now = Date.now()): number {
  let removed = 0;
  for (const name of fs.existsSync(dir) ? fs.readdirSync(dir) : []) {
    const folder = path.join(dir, name);
    if (name.endsWith(PARTIAL) && now - fs.statSync(folder).mtimeMs > PARTIAL_MAX_AGE_MS) {
      fs.rmSync(folder, { recursive: true, force: true });
      removed++;
    }
  }
  return removed;
}

/**
 * Encrypts `source` into `file` (created, never overwritten) and reports both sizes and the
 * file's SHA-256. The plaintext is only counted (age authenticates it), the file hashed. Here,
 * on this thread: for the small parts (the manifest, the database); a volume goes through
 * sealPart (sealedParts.ts), on another core.
 */
export async function writePart(source: Readable, file: string, recipient: AgeIdentity['publicRaw']): Promise<{ plainBytes: number; bytes: number; sha256: string }> {
  const plain = new Tally(false);
  const sealed = new Tally();
  await pipeline(source, plain, new AgeEncrypt(recipient), sealed, fs.createWriteStream(file, { flags: 'wx', mode: 0o600, highWaterMark: STREAM_BUFFER }));
  await syncToDisk(file);
  return { plainBytes: plain.bytes, bytes: sealed.bytes, sha256: sealed.digest() };
}

/**
 * Waits until a file's data, or a folder's entries, are on the disk: a backup is called complete
 * only once a power cut can no longer take any of it back.
 */
export async function syncToDisk(target: string): Promise<void> {
  const handle = await fs.promises.open(target, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Decrypts a part into `sink` after checking its size and SHA-256 against the manifest's; the
 * hash is checked as the file is read, and a mismatch fails the pipeline before the sink is
 * finished (what it wrote so far must then be thrown away by the caller).
 */
export async function readPart(dir: string, part: BackupPart, identity: AgeIdentity, sink: Writable): Promise<void> {
  const file = path.join(dir, part.name);
  if (!fs.existsSync(file)) throw new BackupError('BACKUP_PART_MISSING', `The part ${part.name} is missing from the backup.`);
  const sealed = new Tally();
  const check = new Transform({
    transform(chunk: Buffer, _e, done) {
      done(null, chunk);
    },
    flush(done) {
      if (sealed.bytes !== part.bytes || sealed.digest() !== part.sha256) done(new BackupError('BACKUP_PART_CORRUPT', `The part ${part.name} does not match its SHA-256 in the manifest: it was changed or damaged.`));
      else done();
    },
  });
  await pipeline(fs.createReadStream(file), sealed, check, new AgeDecrypt(identity), sink);
}

/** Decrypts and parses a backup's manifest. */
export async function readManifest(dir: string, identity: AgeIdentity): Promise<BackupManifest> {
  const file = path.join(dir, MANIFEST_PART);
  if (!fs.existsSync(file)) throw new BackupError('BACKUP_NOT_FOUND', `${dir} holds no ClawLoops backup (no ${MANIFEST_PART}).`);
  const chunks: Buffer[] = [];
  await pipeline(
    fs.createReadStream(file),
    new AgeDecrypt(identity),
    new Writable({
      write(chunk: Buffer, _e, done) {
        chunks.push(chunk);
        done();
      },
    }),
  );
  const manifest = JSON.parse(Buffer.concat(chunks).toString('utf8')) as BackupManifest;
  if (manifest.format !== BACKUP_FORMAT) throw new BackupError('BACKUP_FORMAT_UNKNOWN', `The backup's format "${String(manifest.format)}" is not ${BACKUP_FORMAT}.`);
  return manifest;
}
