import { pipeline } from 'node:stream/promises';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { createGzip } from 'node:zlib';
import { pack } from 'tar-stream';
import { AppError, badRequest } from '../lib/errors';
import { firstTarFile } from './tarFraming';
import { baseName, type WorkspacePath } from './workspacePath';

/** The stream helpers of the file manager: nothing here knows where the bytes come from. */

export interface OpenedFile {
  name: string;
  size: number;
  modifiedAt: Date;
  body: Readable;
}

/** The single regular file an archive read holds, with its size from the tar header. */
export async function fileOf(archive: Readable, path: WorkspacePath): Promise<OpenedFile> {
  const { head, body } = await firstTarFile(archive);
  if (head.type !== 'file') {
    body.destroy();
    throw badRequest('NOT_A_FILE', `"${path}" is not a regular file.`);
  }
  return { name: baseName(path), size: head.size, modifiedAt: head.mtime, body };
}

/** Told how many bytes of workspace files went in (uploads) or out (downloads) through the API: the metrics. */
export type FileTraffic = (direction: 'in' | 'out', bytes: number) => void;

/** Passes a stream on unchanged, telling `count` the size of each chunk as it goes through. */
export function countingStream(count: (bytes: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      count(chunk.length);
      done(null, chunk);
    },
  });
}

export function gzipped(archive: Readable): Readable {
  const gzip = createGzip({ level: 3 });
  pipeline(archive, gzip).catch((err: Error) => gzip.destroy(err));
  return gzip;
}

/** Releases `holder` once the body has ended or was destroyed, whichever comes first. */
export function releaseWhenDone(body: Readable, holder: { release(): void }): void {
  body.once('close', () => holder.release());
  body.once('end', () => holder.release());
}

export function emptyTar(): Readable {
  const archive = pack();
  archive.finalize();
  return archive as unknown as Readable;
}

export function bufferStream(content: Buffer): Readable {
  const stream = new PassThrough();
  stream.end(content);
  return stream;
}

/**
 * Destroys `body` once no byte has come out of `archive` for `idleMs`. The engine sends only as
 * fast as the client reads (backpressure all the way), so that means nobody is reading, and the
 * engine may hold the volume's container for as long as the archive stays open.
 */
export function cutWhenUnread(archive: Readable, body: Readable, idleMs: number, onCut: () => void): void {
  const timer = setTimeout(() => {
    onCut();
    body.destroy(new AppError(408, 'DOWNLOAD_IDLE', `Nothing of the download was read for ${Math.round(idleMs / 1000)} s, so it was cut off.`));
  }, idleMs);
  timer.unref();
  // Observing 'data' of a stream that is already piped neither resumes it nor changes its pace.
  archive.on('data', () => timer.refresh());
  const stop = () => clearTimeout(timer);
  archive.once('close', stop);
  body.once('close', stop);
}

/** Passes only bytes [start, end] of a stream, then ends it (HTTP Range). */
export function byteRange(start: number, end: number): Transform {
  let offset = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      const from = Math.max(0, start - offset);
      const to = Math.min(chunk.length, end + 1 - offset);
      offset += chunk.length;
      if (to > from) this.push(chunk.subarray(from, to));
      if (offset > end) this.push(null);
      done();
    },
  });
}
