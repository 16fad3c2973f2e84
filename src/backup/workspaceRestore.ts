import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import type { RestoreRepository, WorkspaceRestoreRecord } from '../db/repositories/restoreRepository';
import type { Actor, AuditLog, RequestOrigin } from '../domain/audit';
import { RESTORE_DIR } from '../files/agent/protocol';
import type { FileAgentClient } from '../files/agentClient';
import type { VolumeGate } from '../files/volumeGate';
import type { VolumeAccess, WorkspaceVolumes } from '../files/workspaceVolumes';
import type { Clock } from '../lib/clock';
import { AppError, conflict, notFound } from '../lib/errors';
import type { Logger } from '../lib/logger';
import { newId } from '../lib/secrets';
import { OperationError, type Operation } from '../runtime/operations';
import type { StartedOperation } from '../runtime/runtimeLifecycle';
import { RUNTIME_UID } from '../runtime/runtimeSettings';
import type { AgeIdentity } from './ageFormat';
import { rewriteTar, type NewHeader } from './tarRewrite';
import { BackupError, backupPath, isBackupId, readManifest, readPart, type BackupManifest, type BackupPart } from './backupFormat';

/** What the restore needs of the runtime layer: its data held with the runtime stopped, and a say before every start. */
export interface RestoreRuntimes {
  runtimeIdForUser(userId: string): string | null;
  withDataHeld(actor: Actor, userId: string, origin: RequestOrigin, kind: 'restore' | 'move', work: (op: Operation) => Promise<void>): StartedOperation;
  beforeStart(hook: (runtimeId: string, userId: string) => Promise<void>): void;
}

export interface WorkspaceRestoreDeps {
  backupDir: string;
  /** The operator's key (BackupService.key): throws BACKUP_KEY_MISSING without one. */
  key: () => AgeIdentity;
  /** A backup running now reads volumes through accesses this restore would cut. */
  backupRunning: () => boolean;
  runtimes: RestoreRuntimes;
  /** The volumes underneath the gate: the restore holds the user's volume and works through these. */
  volumes: WorkspaceVolumes;
  gate: VolumeGate;
  agent: FileAgentClient;
  restores: RestoreRepository;
  /** The volume's root as the file helpers see it (OPENCLAW_HOME). */
  volumeRoot: string;
  audit: AuditLog;
  clock: Clock;
  logger: Logger;
}

const HELD_REASON = 'This workspace is being restored from a backup: its files are back when the restore has finished.';

/**
 * One user's workspace back to what a backup holds. The runtime is stopped and held (nothing can
 * start it or reach its files meanwhile); the backup's files are unpacked beside the current
 * ones, inside the volume; only once every byte is in and the part's SHA-256 matched does the
 * file agent swap the two trees (files/agent/volumeSwap.ts), and only then is the previous
 * content removed. A failure before the swap leaves the volume exactly as it was; a crash during
 * the swap is finished before the runtime's next start (the row in workspace_restores says so).
 */
export class WorkspaceRestore {
  /** Bytes unpacked so far, by restore id, while a restore runs: for the console's progress bar. */
  private readonly progress = new Map<string, { bytesDone: number; bytesTotal: number }>();

  constructor(private readonly deps: WorkspaceRestoreDeps) {
    deps.runtimes.beforeStart((runtimeId, userId) => this.finishInterrupted(runtimeId, userId));
  }

  /** The latest restores, newest first; a running one with how far it got. */
  recent(limit = 20): (WorkspaceRestoreRecord & { progress: { bytesDone: number; bytesTotal: number } | null })[] {
    return this.deps.restores.recent(limit).map((r) => ({ ...r, progress: this.progress.get(r.id) ?? null }));
  }

  /** Checks the request, then starts the restore as the runtime's operation; its progress is on the runtime's event stream. */
  async restore(actor: Actor, origin: RequestOrigin, input: { userId: string; username: string; backupId: string }): Promise<StartedOperation> {
    const { deps } = this;
    const identity = deps.key();
    if (!isBackupId(input.backupId)) throw notFound('BACKUP_NOT_FOUND', `No backup ${input.backupId}.`);
    const dir = backupPath(deps.backupDir, input.backupId);
    let manifest: BackupManifest;
    try {
      manifest = await readManifest(dir, identity);
    } catch (err) {
      if (err instanceof BackupError && err.code === 'BACKUP_NOT_FOUND') throw notFound('BACKUP_NOT_FOUND', `No backup ${input.backupId}.`);
      throw new AppError(422, 'BACKUP_UNREADABLE', `The backup ${input.backupId} cannot be read with the configured key: ${(err as Error).message}`);
    }
    const part = workspacePart(manifest, input.userId, input.username);
    if (!part) throw notFound('BACKUP_HAS_NO_WORKSPACE', `The backup ${input.backupId} holds no workspace of ${input.username}.`);
    if (deps.backupRunning()) throw conflict('BACKUP_RUNNING', 'A backup is running; restore when it has finished.');
    if (!deps.runtimes.runtimeIdForUser(input.userId)) {
      throw conflict('RUNTIME_NOT_CREATED', `${input.username} has no workspace volume yet: start the runtime once, then restore into it.`);
    }
    return deps.runtimes.withDataHeld(actor, input.userId, origin, 'restore', (op) => this.run(op, actor, origin, input, dir, part, identity, manifest.createdAt));
  }

  private async run(op: Operation, actor: Actor, origin: RequestOrigin, input: { userId: string; username: string; backupId: string }, dir: string, part: BackupPart, identity: AgeIdentity, takenAt: string): Promise<void> {
    const { deps } = this;
    const release = deps.gate.hold(input.userId, HELD_REASON);
    const record = { id: newId(), userId: input.userId, runtimeId: op.runtimeId, username: input.username, backupId: input.backupId, actorUsername: actor.username, startedAt: deps.clock.now() };
    try {
      // Streams of the file manager still open (a download, an upload) end here, not mid-swap.
      await deps.volumes.closeRuntime(op.runtimeId);
      const access = await deps.volumes.acquire(input.userId, 'stream');
      try {
        await this.finishSwaps(access, op.runtimeId);
        await this.agent(access, { op: 'clearRestores', volumeRoot: deps.volumeRoot });
        deps.restores.begin(record);
        this.progress.set(record.id, { bytesDone: 0, bytesTotal: part.plainBytes });
        const label = `the backup of ${takenAt.slice(0, 16).replace('T', ' ')} UTC`;
        op.update({ step: 'restoring', percent: 10, message: `Unpacking ${input.username}'s files from ${label}`, bytesDone: 0, bytesTotal: part.plainBytes });
        try {
          await this.unpack(access, dir, part, identity, record.id, (bytes) => {
            this.progress.set(record.id, { bytesDone: bytes, bytesTotal: part.plainBytes });
            op.update({ step: 'restoring', percent: 10 + Math.min(80, (bytes / Math.max(1, part.plainBytes)) * 80), message: `Unpacking ${input.username}'s files from ${label}`, bytesDone: bytes, bytesTotal: part.plainBytes });
          });
        } catch (err) {
          const failure = restoreFailure(err);
          deps.restores.setPhase(record.id, 'failed', deps.clock.now(), { error: failure.message });
          await this.agent(access, { op: 'clearRestores', volumeRoot: deps.volumeRoot }).catch((e: unknown) => deps.logger.warn({ username: input.username, err: (e as Error).message }, 'could not remove a failed restore\'s files; the next restore does'));
          throw failure;
        }
        op.update({ step: 'restoring', percent: 92, message: 'Putting the restored files in place' });
        deps.restores.setPhase(record.id, 'swapping', deps.clock.now(), { bytes: part.plainBytes });
        try {
          await this.agent(access, { op: 'swapVolume', volumeRoot: deps.volumeRoot, id: record.id });
        } catch (err) {
          // A swap that failed on its own put the previous files back and left no journal: then the
          // restore folder can go and nothing changed. One cut off mid-way (its journal still says
          // so) refuses to be cleared, stays 'swapping', and is finished before the next start.
          const undone = await this.agent(access, { op: 'clearRestores', volumeRoot: deps.volumeRoot }).then(
            () => true,
            () => false,
          );
          if (undone) deps.restores.setPhase(record.id, 'failed', deps.clock.now(), { error: `${(err as Error).message} The previous files were put back.` });
          throw err;
        }
        deps.restores.setPhase(record.id, 'done', deps.clock.now());
        await this.agent(access, { op: 'clearRestores', volumeRoot: deps.volumeRoot }).catch((e: unknown) => deps.logger.warn({ username: input.username, err: (e as Error).message }, 'the previous files of a finished restore could not be removed; the next restore does'));
      } finally {
        access.release();
      }
    } finally {
      this.progress.delete(record.id);
      release();
    }
    deps.logger.info({ username: input.username, backup: input.backupId, bytes: part.plainBytes }, 'workspace restored from a backup');
    deps.audit.record({
      action: 'workspace.restore',
      actor,
      target: { type: 'user', id: input.userId, label: input.username },
      origin,
      detail: { backupId: input.backupId, bytes: part.plainBytes, operationId: op.id },
    });
  }

  /** Streams the part, decrypted and checked, into `<volume>/.clawloops-restore/<id>/`. */
  private async unpack(access: VolumeAccess, dir: string, part: BackupPart, identity: AgeIdentity, id: string, onBytes: (bytes: number) => void): Promise<void> {
    let bytes = 0;
    let reported = 0;
    const counted = new Transform({
      highWaterMark: 1024 * 1024,
      transform(chunk: Buffer, _e, done) {
        bytes += chunk.length;
        if (bytes - reported >= 16 * 1024 * 1024) {
          reported = bytes;
          onBytes(bytes);
        }
        done(null, chunk);
      },
    });
    const rebased = rebaseArchive(counted, path.posix.basename(this.deps.volumeRoot), `${RESTORE_DIR}/${id}`);
    // A part that fails its check (or cannot be decrypted) fails at its very end, after the engine
    // has unpacked what came before into the restore folder: the write is cut, the folder cleared.
    const cut = new AbortController();
    const reading = readPart(dir, part, identity, counted).catch((err: unknown) => {
      cut.abort(err);
      rebased.destroy(err as Error);
      throw err;
    });
    const writing = access.writeArchive(this.deps.volumeRoot, rebased, AbortSignal.any([access.signal, cut.signal]));
    const [read, written] = await Promise.allSettled([reading, writing]);
    if (read.status === 'rejected') throw read.reason;
    if (written.status === 'rejected') throw written.reason;
  }

  /** Before a start: a swap a crash interrupted is finished, an unpacking it interrupted is thrown away. */
  private async finishInterrupted(runtimeId: string, userId: string): Promise<void> {
    if (this.deps.restores.unfinished(runtimeId).length === 0) return;
    await this.deps.gate.free(userId);
    const access = await this.deps.volumes.acquire(userId, 'stream');
    try {
      await this.finishSwaps(access, runtimeId);
      await this.agent(access, { op: 'clearRestores', volumeRoot: this.deps.volumeRoot });
    } finally {
      access.release();
    }
  }

  private async finishSwaps(access: VolumeAccess, runtimeId: string): Promise<void> {
    const { restores, clock, logger } = this.deps;
    for (const record of restores.unfinished(runtimeId)) {
      if (record.phase === 'swapping') {
        try {
          await this.agent(access, { op: 'swapVolume', volumeRoot: this.deps.volumeRoot, id: record.id });
        } catch (err) {
          // As in run(): a swap that undid itself can be cleared, and the runtime starts on its previous files.
          await this.agent(access, { op: 'clearRestores', volumeRoot: this.deps.volumeRoot });
          restores.setPhase(record.id, 'failed', clock.now(), { error: `${(err as Error).message} The previous files were put back.` });
          continue;
        }
        restores.setPhase(record.id, 'done', clock.now());
        logger.warn({ username: record.username, backup: record.backupId }, 'finished a workspace restore that was interrupted while its files were being swapped');
      } else {
        restores.setPhase(record.id, 'failed', clock.now(), { error: 'Interrupted (the server stopped) before the files were swapped; nothing was changed.' });
      }
    }
  }

  private agent(access: VolumeAccess, request: { op: 'swapVolume'; volumeRoot: string; id: string } | { op: 'clearRestores'; volumeRoot: string }): Promise<unknown> {
    return this.deps.agent.run(access, request);
  }
}

/** The user's volume part: by account id, or by username for an account made again after it was deleted. */
function workspacePart(manifest: BackupManifest, userId: string, username: string): BackupPart | null {
  const user = manifest.users.find((u) => u.id === userId) ?? manifest.users.find((u) => u.username === username);
  if (!user?.runtimeId) return null;
  return manifest.parts.find((p) => p.kind === 'volume' && p.runtimeId === user.runtimeId) ?? null;
}

function restoreFailure(err: unknown): Error {
  if (err instanceof BackupError) return new OperationError(err.code, `${err.message} Nothing in the workspace was changed.`);
  if (err instanceof OperationError) return err;
  if (err instanceof Error && err.name === 'AgeError') return new OperationError('BACKUP_UNDECRYPTABLE', `The backup's workspace part cannot be decrypted: ${err.message}. Nothing in the workspace was changed.`);
  return err instanceof Error ? err : new Error(String(err));
}

const ALLOWED_TYPES = new Set<NewHeader['type']>(['file', 'directory', 'symlink', 'link']);

/**
 * The backup's tar of the volume (entries under `<rootName>/`) with every entry moved under
 * `target/` and made plain: owned by the runtime's user, no set-id or sticky bits, only files,
 * folders and links. Whatever a backup holds, unpacking it cannot give anything in the volume
 * more power than the member's own files have. Anything outside `<rootName>/` is refused.
 */
export function rebaseArchive(source: Readable, rootName: string, target: string): Readable {
  const rebase = (name: string): string | null => {
    const trimmed = name.replace(/\/+$/, '');
    if (trimmed === rootName) return target;
    if (!trimmed.startsWith(`${rootName}/`)) return null;
    const rest = trimmed.slice(rootName.length + 1);
    if (rest.split('/').some((s) => s === '..' || s === '.' || s === '')) return null;
    return `${target}/${rest}`;
  };
  const plain = { uid: RUNTIME_UID, gid: RUNTIME_UID, uname: '', gname: '', devmajor: 0, devminor: 0 };
  const folder = (name: string): NewHeader => ({ name, type: 'directory', mode: 0o700, mtime: new Date(), ...plain });
  // The folders the tree goes into, the runtime user's (the engine would make missing ones root's).
  const parent = target.split('/').slice(0, -1).join('/');
  return rewriteTar(
    source,
    (header) => {
      const name = rebase(header.name);
      if (!name) return new BackupError('BACKUP_PART_INVALID', `The backup's workspace holds an entry outside the workspace (${header.name.slice(0, 200)}).`);
      if (name === target || !ALLOWED_TYPES.has(header.type)) return 'skip';
      const linkname = header.type === 'link' ? (header.linkname ? rebase(header.linkname) : null) : header.linkname;
      if (header.type === 'link' && !linkname) return new BackupError('BACKUP_PART_INVALID', `The backup's workspace holds a hard link to outside the workspace (${header.name.slice(0, 200)}).`);
      return { name, type: header.type, size: header.type === 'file' ? header.size : 0, mode: header.mode & 0o777, mtime: header.mtime, ...(linkname ? { linkname } : {}), ...plain };
    },
    parent ? [folder(parent), folder(target)] : [folder(target)],
  );
}
