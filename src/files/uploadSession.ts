import type { Readable } from 'node:stream';
import { badRequest } from '../lib/errors';
import type { StagedFile } from './agent/protocol';
import type { FileAgentClient } from './agentClient';
import { fileTooLarge } from './fileErrors';
import type { Staging } from './staging';
import { ROOT_PATH, type WorkspacePath } from './workspacePath';
import type { VolumeAccess } from './workspaceVolumes';

export interface WrittenFile {
  path: string;
  size: number;
}

/** A claim on a user's free quota for one write (WorkspaceFiles.reserveRoom). */
export interface Room {
  /** Claims `n` bytes in total for this write; a 413 when other writes in flight and the files stored leave less. */
  take(n: number): void;
  release(): void;
}

/** Files arriving one by one (multipart) into one staging folder, moved into place at commit. */
export class UploadSession {
  private readonly staged: StagedFile[] = [];
  private readonly seen = new Set<string>();
  private readonly folders = new Set<string>();
  private bytes = 0;
  private settled = false;

  constructor(
    private readonly s: {
      agent: FileAgentClient;
      stage: Staging;
      access: VolumeAccess;
      room: Room;
      /** The file root as the agent sees it (FilesSettings.root). */
      root: string;
      dir: WorkspacePath;
      overwrite: boolean;
      maxFileBytes: number;
      onCommitted: (written: WrittenFile[]) => void;
    },
  ) {}

  get fileCount(): number {
    return this.staged.length;
  }

  /**
   * Claims `size` bytes of quota for a file of this upload that is still arriving (spooled to
   * disk first), before its bytes are written anywhere: a 413 as soon as it passes what is free.
   */
  reserve(path: WorkspacePath, size: number): void {
    if (size > this.s.maxFileBytes) throw fileTooLarge(path, this.s.maxFileBytes);
    this.s.room.take(this.bytes + size);
  }

  /** Checks name and size against the limits, then streams the file into staging (`open` is called only then). */
  add(path: WorkspacePath, size: number, open: () => Readable): Promise<void> {
    if (path === ROOT_PATH) throw badRequest('INVALID_PATH', 'A file in the upload has no name.');
    if (this.seen.has(path)) throw badRequest('DUPLICATE_PATH', `"${path}" appears twice in this upload.`);
    // "a" and "a/b.txt" in one upload: one of them would have to be a file and a folder at once.
    if (this.folders.has(path)) throw badRequest('PATH_CONFLICT_IN_UPLOAD', `"${path}" is both a file and a folder in this upload.`);
    const parents = path.split('/').slice(0, -1).map((_, i, all) => all.slice(0, i + 1).join('/'));
    const clash = parents.find((parent) => this.seen.has(parent));
    if (clash) throw badRequest('PATH_CONFLICT_IN_UPLOAD', `"${clash}" is both a file and a folder in this upload.`);
    for (const parent of parents) this.folders.add(parent);
    if (size > this.s.maxFileBytes) throw fileTooLarge(path, this.s.maxFileBytes);
    this.s.room.take(this.bytes + size);
    this.seen.add(path);
    this.bytes += size;
    const name = String(this.staged.length);
    this.staged.push({ name, path });
    return this.s.stage.add(name, size, open);
  }

  async commit(): Promise<WrittenFile[]> {
    if (this.settled) throw new Error('upload already finished');
    this.settled = true;
    const { agent, stage, access, room } = this.s;
    let written: WrittenFile[];
    try {
      await stage.finish();
      ({ written } = await agent.run<{ written: WrittenFile[] }>(access, {
        op: 'commit',
        root: this.s.root,
        staging: stage.staging,
        dir: this.s.dir,
        files: this.staged,
        overwrite: this.s.overwrite,
      }));
      this.s.onCommitted(written);
    } catch (err) {
      stage.cancel(err as Error);
      room.release();
      await agent.cleanUp(access, stage.staging);
      throw err;
    }
    room.release();
    access.release();
    return written;
  }

  /** Nothing of this upload stays: the stream is cut and the staging folder removed. */
  async abort(reason: Error): Promise<void> {
    if (this.settled) return;
    this.settled = true;
    const { agent, stage, access, room } = this.s;
    stage.cancel(reason);
    room.release();
    await agent.cleanUp(access, stage.staging);
  }
}
