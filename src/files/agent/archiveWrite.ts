import { constants as fsConstants, type Stats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { extract, type ExtractEvents, type Header } from 'tar-stream';
import { badRequest, refusalOfErrno } from './serverErrors';
import { lstatOrNull } from './serverPaths';

/**
 * Unpacks a tar stream into an existing folder the way the Docker engine's archive write
 * (putArchive) does it for the file manager's writers (staging.ts, the workspace restore):
 *
 * - entries are files, folders, hard links and symlinks (anything else is refused); owners in
 *   the headers are ignored (everything belongs to the server's user, uid 1000), modes keep only
 *   the permission bits, mtimes are applied (folders' once everything is in, as writing into a
 *   folder changes its mtime; their modes then too, so a read-only folder can still be filled);
 * - an entry replaces whatever is at its path: a symlink there is removed, never followed, a
 *   folder in the way of anything but a folder is removed with everything in it; a folder entry
 *   over a folder merges;
 * - missing parent folders are created (0755);
 * - refused with a 400, and nothing more written: absolute names, `..` components, a hard link to
 *   anything outside the folder, a parent component that exists and is a symlink (even one an
 *   earlier entry of the same archive made), a parent component that is a file.
 *
 * Entries already unpacked when a refusal, a broken archive or a client going away stops the
 * write stay (the writers unpack into staging folders that they discard); a file being written
 * at that moment is closed and removed. File bytes stream from the request to the disk with
 * backpressure, a chunk at a time.
 */

/** The request went away before its end: there is nobody left to answer. */
export class ClientGone extends Error {
  constructor() {
    super('the client went away during the archive write');
  }
}

/** The tar stream itself is broken (not a tar, truncated). */
class BrokenArchive extends Error {}

/** One entry of the archive being read: its header, and its body as a stream. */
type Entry = ExtractEvents['entry'][1];

const FILE_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

interface Folder {
  mode: number;
  mtime: Date;
}

/** The components of an entry's name, or a refusal: no absolute names, no `..`. */
function segmentsOf(name: string, what: string): string[] {
  if (name.startsWith('/')) throw badRequest('ABSOLUTE_NAME', `The archive holds an absolute ${what} (${name.slice(0, 200)}).`);
  const segments = name.split('/').filter((s) => s !== '' && s !== '.');
  if (segments.includes('..')) throw badRequest('PATH_TRAVERSAL', `The archive holds a ${what} with a ".." component (${name.slice(0, 200)}).`);
  return segments;
}

/** Makes `path` a folder its owner can write into (a restored read-only folder gets its mode at the end). */
async function writableFolder(path: string, stats: Stats): Promise<void> {
  if ((stats.mode & 0o700) !== 0o700) await fsp.chmod(path, (stats.mode & 0o7777) | 0o700);
}

/** rm -r of whatever is at `path`, even folders whose owner may not write into them. */
async function removeEntry(path: string, stats: Stats): Promise<void> {
  if (!stats.isDirectory()) {
    await fsp.unlink(path);
    return;
  }
  const stack = [path];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    const st = await lstatOrNull(dir);
    if (!st?.isDirectory()) continue;
    await writableFolder(dir, st);
    for (const name of await fsp.readdir(dir)) stack.push(`${dir}/${name}`);
  }
  await fsp.rm(path, { recursive: true, force: true });
}

export class ArchiveWriter {
  /** Folder → the mode and mtime its (last) entry gives it, applied at the end. */
  private readonly folders = new Map<string, Folder>();

  constructor(private readonly dir: string) {}

  /**
   * The folder `segments` (all but the last) lead to under `dir`, created where missing.
   * `create: false` (a hard link's target): every component must exist already.
   */
  private async parentOf(segments: string[], name: string, create: boolean): Promise<string> {
    let current = this.dir;
    for (let i = 0; i < segments.length - 1; i++) {
      const next = `${current}/${segments[i]}`;
      let st = await lstatOrNull(next);
      if (!st && create) {
        try {
          await fsp.mkdir(next, { mode: 0o755 });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        st = await fsp.lstat(next);
      }
      if (!st) throw badRequest('LINK_TARGET_MISSING', `The archive holds a hard link to ${name.slice(0, 200)}, which is not there.`);
      if (st.isSymbolicLink()) throw badRequest('SYMLINK_IN_PATH', `The archive writes through a symbolic link (${segments.slice(0, i + 1).join('/').slice(0, 200)}).`);
      if (!st.isDirectory()) throw badRequest('NOT_A_DIRECTORY', `The archive writes into ${segments.slice(0, i + 1).join('/').slice(0, 200)}, which is not a folder.`);
      current = next;
    }
    return current;
  }

  /** One entry, its body (if any) read to its end. */
  async entry(header: Header, body: Entry): Promise<void> {
    const type = header.type === 'contiguous-file' ? 'file' : header.type;
    if (type !== 'file' && type !== 'directory' && type !== 'symlink' && type !== 'link') {
      throw badRequest('UNSUPPORTED_ENTRY', `The archive holds a ${type ?? 'strange'} entry (${header.name.slice(0, 200)}); only files, folders and links can be written.`);
    }
    const segments = segmentsOf(header.name, 'name');
    const last = segments[segments.length - 1];
    if (last === undefined) {
      // The folder itself ("./"): it exists, and its own mode and times are not the archive's to set.
      if (type !== 'directory') throw badRequest('INVALID_NAME', 'The archive holds an entry without a name.');
      return;
    }
    const path = `${await this.parentOf(segments, header.name, true)}/${last}`;
    const mode = (header.mode ?? 0o644) & 0o777;
    const mtime = header.mtime ?? new Date();
    const existing = await lstatOrNull(path);
    // The parser hands a folder's entry over without a body; a link's body (none should have one) is skipped.
    if (type !== 'file' && type !== 'directory' && (header.size ?? 0) > 0) await drain(body);

    if (type === 'directory') {
      if (existing?.isDirectory()) await writableFolder(path, existing);
      else {
        if (existing) await removeEntry(path, existing);
        await fsp.mkdir(path, { mode: 0o700 });
      }
      this.folders.set(path, { mode, mtime });
      return;
    }
    if (type === 'symlink') {
      if (existing) await removeEntry(path, existing);
      await fsp.symlink(header.linkname ?? '', path);
      await fsp.lutimes(path, mtime, mtime);
      return;
    }
    if (type === 'link') {
      const targetSegments = segmentsOf(header.linkname ?? '', 'hard link target');
      const targetName = targetSegments[targetSegments.length - 1];
      if (targetName === undefined) throw badRequest('INVALID_LINK', `The archive holds a hard link without a target (${header.name.slice(0, 200)}).`);
      const target = `${await this.parentOf(targetSegments, header.linkname ?? '', false)}/${targetName}`;
      const targetStats = await lstatOrNull(target);
      if (!targetStats) throw badRequest('LINK_TARGET_MISSING', `The archive holds a hard link to ${(header.linkname ?? '').slice(0, 200)}, which is not there.`);
      if (targetStats.isDirectory()) throw badRequest('INVALID_LINK', `The archive holds a hard link to a folder (${(header.linkname ?? '').slice(0, 200)}).`);
      if (target === path) return;
      if (existing) await removeEntry(path, existing);
      // link() does not follow a symlink target: the new name is that symlink, wherever it points.
      await fsp.link(target, path);
      return;
    }
    if (existing) await removeEntry(path, existing);
    await writeFile(path, body, mode, mtime);
  }

  /**
   * The folders' modes and times, once everything is in them. In any order: changing a folder's
   * mode or times needs only its ownership, and changes nothing about the folder it is in.
   */
  async finish(): Promise<void> {
    for (const [path, folder] of this.folders) {
      const st = await lstatOrNull(path);
      // Replaced by a later entry of the archive: that one stands.
      if (!st?.isDirectory()) continue;
      await fsp.chmod(path, folder.mode);
      await fsp.utimes(path, folder.mtime, folder.mtime);
    }
    this.folders.clear();
  }
}

/** Reads an entry's body to its end (a broken archive or a client gone shows up here too). */
async function* chunksOf(body: Entry): AsyncGenerator<Buffer> {
  const chunks = body[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<unknown>;
    try {
      next = await chunks.next();
    } catch (err) {
      throw err instanceof ClientGone ? err : new BrokenArchive((err as Error).message);
    }
    if (next.done) return;
    yield next.value as Buffer;
  }
}

async function drain(body: Entry): Promise<void> {
  for await (const chunk of chunksOf(body)) void chunk;
}

/** A new file at `path` (nothing is there: O_EXCL), never through a symlink; removed again unless written whole. */
async function writeFile(path: string, body: Entry, mode: number, mtime: Date): Promise<void> {
  const file = await fsp.open(path, FILE_FLAGS, 0o600);
  let complete = false;
  try {
    for await (const chunk of chunksOf(body)) {
      let offset = 0;
      while (offset < chunk.length) offset += (await file.write(chunk, offset, chunk.length - offset)).bytesWritten;
    }
    await file.chmod(mode);
    await file.utimes(mtime, mtime);
    complete = true;
  } finally {
    await file.close().catch(() => undefined);
    if (!complete) await fsp.unlink(path).catch(() => undefined);
  }
}

/**
 * Unpacks all of `source` into the existing folder `dir` (resolved and checked by the caller).
 * Resolves once every entry is on disk. Rejects with a ServerRefusal (400 for a refused or broken
 * archive, 403/409/507 for what the file system said), or ClientGone when the source ended early.
 */
export async function unpackArchive(source: Readable, dir: string): Promise<void> {
  const extractor = extract();
  const writer = new ArchiveWriter(dir);
  const onClose = () => {
    if (!source.readableEnded) extractor.destroy(new ClientGone());
  };
  source.once('close', onClose);
  source.once('error', onClose);
  source.pipe(extractor);
  const entries = extractor[Symbol.asyncIterator]();
  try {
    for (;;) {
      let next: IteratorResult<Entry>;
      try {
        next = await entries.next();
      } catch (err) {
        throw err instanceof ClientGone ? err : new BrokenArchive((err as Error).message);
      }
      if (next.done) break;
      await writer.entry(next.value.header, next.value);
    }
    await writer.finish();
  } catch (err) {
    source.unpipe(extractor);
    extractor.destroy();
    if (err instanceof ClientGone || (err instanceof Error && source.destroyed && !source.readableEnded)) throw new ClientGone();
    if (err instanceof BrokenArchive) throw badRequest('INVALID_ARCHIVE', `The archive cannot be read: ${err.message}.`);
    throw refusalOfErrno(err, 'Writing the archive') ?? err;
  } finally {
    source.off('close', onClose);
    source.off('error', onClose);
  }
}
