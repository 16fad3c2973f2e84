import { PassThrough, type Readable } from 'node:stream';
import { badRequest } from '../lib/errors';
import { newId } from '../lib/secrets';
import { RUNTIME_UID } from '../runtime/runtimeSettings';
import type { ImportSink } from './archiveImport';
import { volumeFault } from './fileErrors';
import { bufferStream } from './fileStreams';
import { TAR_END, tarHeader, tarPadding } from './tarFraming';
import type { VolumeAccess } from './workspaceVolumes';

export const STAGING_DIR = '.clawloops-staging';
const stagingHeader = { uid: RUNTIME_UID, gid: RUNTIME_UID, type: 'directory' as const, mode: 0o700 };

/** What a staging folder is written through: a volume access, or a capture of it in tests. */
export type StagingTarget = Pick<VolumeAccess, 'writeArchive'> & { signal?: AbortSignal };

/** An entry of a staging folder; `name` is relative to it. */
export interface StagedEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink';
  /** Files only: exactly this many bytes must come from the body. */
  size?: number;
  mode: number;
  mtime?: Date;
  linkname?: string;
}

/**
 * One staging folder, `<volume>/.clawloops-staging/<id>/`, and the archive write filling
 * it. This is the only writer of that request, and it frames every entry itself (tarFraming.ts):
 * the engine reads whatever arrives as tar, so a body byte past an entry's declared size would be
 * read as a header the client chose (any path in the volume, any owner, mode or type). A body
 * that brings more or fewer bytes than declared therefore stops the archive on the spot: the
 * surplus never leaves, nothing else is written, and the request to the engine is aborted.
 * Entries go in strictly one after another (tar has no interleaving); file bytes pass straight
 * from the request to the engine.
 */
export class Staging {
  readonly id = newId();
  readonly entryPrefix = `${STAGING_DIR}/${this.id}`;
  readonly staging: string;
  private readonly archive = new PassThrough({ highWaterMark: 1024 * 1024 });
  private readonly abort = new AbortController();
  private readonly put: Promise<void>;
  private queue: Promise<void> = Promise.resolve();
  private failure: Error | null = null;

  /**
   * `access.signal`: the access is taken away (the volume is about to be purged, the server is
   * shutting down); the write is cancelled with its reason.
   */
  constructor(access: StagingTarget, volumeRoot: string) {
    const revoked = access.signal;
    this.staging = `${volumeRoot}/${this.entryPrefix}`;
    const mtime = new Date();
    this.archive.on('error', () => undefined); // a cancel destroys it with the reason; callers hear it from their own promise
    this.archive.write(tarHeader({ ...stagingHeader, name: STAGING_DIR, size: 0, mtime }));
    this.archive.write(tarHeader({ ...stagingHeader, name: this.entryPrefix, size: 0, mtime }));
    this.put = access.writeArchive(volumeRoot, this.archive, this.abort.signal);
    // The engine refusing or dropping the write must stop the writers, not leave them waiting for a drain.
    this.put.catch((err: unknown) => this.cancel(volumeFault(err)));
    if (revoked) {
      const onRevoked = () => this.cancel(volumeFault(revoked.reason));
      if (revoked.aborted) onRevoked();
      else {
        revoked.addEventListener('abort', onRevoked, { once: true });
        this.put.catch(() => undefined).finally(() => revoked.removeEventListener('abort', onRevoked));
      }
    }
  }

  /** Streams exactly `size` bytes from `open()` as the staged file `name`; resolves once all are written. */
  add(name: string, size: number, open: () => Readable): Promise<void> {
    return this.entry({ name, type: 'file', size, mode: 0o644 }, open);
  }

  /**
   * Appends one entry. A file's body (`open` is called only when its turn comes) must bring
   * exactly `size` bytes; otherwise the whole staging is cancelled with a 400 SIZE_MISMATCH.
   * Owners are always the runtime user's; modes keep only permission bits.
   */
  entry(entry: StagedEntry, open?: () => Readable): Promise<void> {
    return this.enqueue(async () => {
      const size = entry.type === 'file' ? (entry.size ?? 0) : 0;
      this.archive.write(
        tarHeader({
          name: `${this.entryPrefix}/${entry.name}`,
          type: entry.type,
          size,
          mode: entry.mode,
          uid: RUNTIME_UID,
          gid: RUNTIME_UID,
          mtime: entry.mtime ?? new Date(),
          ...(entry.linkname !== undefined ? { linkname: entry.linkname } : {}),
        }),
      );
      if (entry.type !== 'file') return;
      await this.copyExactly(open ? open() : bufferStream(Buffer.alloc(0)), size);
      this.archive.write(tarPadding(size));
    });
  }

  /** Ends the archive and waits until the engine has unpacked all of it. */
  async finish(): Promise<void> {
    await this.queue;
    if (this.failure) throw this.failure;
    this.archive.end(TAR_END);
    await this.put;
    if (this.failure) throw this.failure;
  }

  cancel(reason: Error): void {
    this.failure ??= reason;
    this.abort.abort(reason);
    this.archive.destroy(reason);
  }

  private enqueue(step: () => Promise<void>): Promise<void> {
    const run = this.queue.then(() => {
      // Once cancelled, nothing more is written: not even a header.
      if (this.failure) throw this.failure;
      return step();
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  /**
   * Copies exactly `size` bytes of `source` into the archive, with backpressure. A chunk that
   * would go past `size` is cut at the boundary before anything of it is written past it; a
   * source that ends early or fails leaves the entry short. Either way the staging is cancelled
   * at once, so the engine never sees a byte that is not part of our framing.
   */
  private copyExactly(source: Readable, size: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let written = 0;
      let settled = false;
      const settle = (err: Error | null) => {
        if (settled) return;
        settled = true;
        // The source may still report its own failure later (it is destroyed below): nobody listens for it any more.
        source.on('error', () => undefined);
        source.off('data', onData);
        source.off('end', onEnd);
        source.off('error', settle);
        source.off('close', onClose);
        this.archive.off('drain', onDrain);
        this.archive.off('close', onArchiveClose);
        if (!err) return resolve();
        this.cancel(err);
        source.destroy();
        reject(err);
      };
      const onData = (chunk: Buffer) => {
        const room = size - written;
        if (chunk.length > room) {
          if (room > 0) this.archive.write(chunk.subarray(0, room));
          written = size;
          settle(badRequest('SIZE_MISMATCH', `The upload sent more than the ${size} bytes it announced for a file.`));
          return;
        }
        written += chunk.length;
        if (!this.archive.write(chunk)) source.pause();
      };
      const onDrain = () => source.resume();
      const onEnd = () =>
        settle(written === size ? null : badRequest('SIZE_MISMATCH', `The upload announced ${size} bytes for a file but sent ${written}.`));
      const onClose = () => settle(badRequest('UPLOAD_CUT_OFF', `A file of the upload was cut off after ${written} of its ${size} bytes.`));
      const onArchiveClose = () => settle(this.failure ?? new Error('the write into the runtime ended early'));
      if (this.failure) return settle(this.failure);
      if (source.readableEnded) return onEnd();
      if (source.destroyed) return source.errored ? settle(source.errored) : onClose();
      source.on('data', onData);
      source.once('end', onEnd);
      source.once('error', settle);
      source.once('close', onClose);
      this.archive.on('drain', onDrain);
      this.archive.once('close', onArchiveClose);
    });
  }
}

/** An import's checked entries, written under `folder` of the staging folder (created here). */
export async function importSink(stage: Staging, folder: string): Promise<ImportSink> {
  await stage.entry({ name: folder, type: 'directory', mode: 0o700 });
  return {
    directory: (path, mode, mtime) => stage.entry({ name: `${folder}/${path}`, type: 'directory', mode, mtime }),
    symlink: (path, target, mtime) => stage.entry({ name: `${folder}/${path}`, type: 'symlink', linkname: target, mode: 0o777, mtime }),
    file: (path, size, mode, mtime, body) => stage.entry({ name: `${folder}/${path}`, type: 'file', size, mode, mtime }, () => body),
  };
}
