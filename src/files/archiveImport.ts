import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract, type Header } from 'tar-stream';
import { AppError, badRequest } from '../lib/errors';
import { MAX_NAME_BYTES, MAX_PATH_BYTES } from './workspacePath';

export interface ImportLimits {
  maxEntries: number;
  /** Sum of the declared sizes of all files. */
  maxTotalBytes: number;
  maxFileBytes: number;
  /** Said in the 413 message when maxTotalBytes is the quota rather than the import limit. */
  totalLimitReason: string;
}

export interface ImportTotals {
  entries: number;
  files: number;
  bytes: number;
}

const tooLarge = (code: string, message: string) => new AppError(413, code, message);
const unsafe = (message: string) => badRequest('ARCHIVE_UNSAFE_ENTRY', message);

/** The first bytes of a stream, put back so that whoever reads it next still gets them. */
function peek(source: Readable): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const done = (chunk: Buffer) => {
      source.off('readable', onReadable);
      source.off('end', onEnd);
      source.off('error', reject);
      resolve(chunk);
    };
    const onReadable = () => {
      const chunk = source.read() as Buffer | null;
      if (chunk === null) return;
      source.unshift(chunk);
      done(chunk);
    };
    const onEnd = () => done(Buffer.alloc(0));
    source.on('readable', onReadable);
    source.once('end', onEnd);
    source.once('error', reject);
  });
}

/** The entry's path inside the import folder, normalised; null for the archive's own root ("./"). */
export function safeEntryPath(name: string): string | null {
  if (name.includes('\0')) throw unsafe('An entry name contains a NUL byte.');
  if (name.startsWith('/')) throw unsafe(`Entry "${preview(name)}" has an absolute path; only relative paths can be imported.`);
  if (Buffer.byteLength(name) > MAX_PATH_BYTES) throw unsafe(`Entry "${preview(name)}" has a path longer than ${MAX_PATH_BYTES} bytes.`);
  const segments: string[] = [];
  for (const segment of name.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') throw unsafe(`Entry "${preview(name)}" climbs out of the import folder with "..".`);
    if (Buffer.byteLength(segment) > MAX_NAME_BYTES) throw unsafe(`Entry "${preview(name)}" has a name longer than ${MAX_NAME_BYTES} bytes.`);
    segments.push(segment);
  }
  return segments.length === 0 ? null : segments.join('/');
}

/** A symlink may point anywhere inside the folder it is imported into, never above or absolute. */
function checkLinkTarget(entryPath: string, target: string | null | undefined): string {
  if (!target) throw unsafe(`Symbolic link "${preview(entryPath)}" has no target.`);
  if (target.includes('\0')) throw unsafe(`Symbolic link "${preview(entryPath)}" has a NUL byte in its target.`);
  if (target.startsWith('/')) throw unsafe(`Symbolic link "${preview(entryPath)}" points to the absolute path "${preview(target)}".`);
  const resolved = posix.normalize(posix.join(posix.dirname(entryPath), target));
  if (resolved === '..' || resolved.startsWith('../')) throw unsafe(`Symbolic link "${preview(entryPath)}" points outside the import folder ("${preview(target)}").`);
  return target;
}

/**
 * Where checked entries go, one at a time and in archive order. Paths are relative to the
 * import folder and already checked. `file` must consume exactly `size` bytes of `body`.
 */
export interface ImportSink {
  directory(path: string, mode: number, mtime: Date): Promise<void>;
  symlink(path: string, target: string, mtime: Date): Promise<void>;
  file(path: string, size: number, mode: number, mtime: Date, body: Readable): Promise<void>;
}

/**
 * Reads an uploaded .tar or .tar.gz and hands every entry to `sink` after checking it: relative
 * paths without "..", links that stay inside, no devices, FIFOs or hard links, entry count and
 * declared sizes within limits (checked from the header, before its bytes are read, so an archive
 * bomb stops at its first oversized header). `reserve` is told the running total of declared file
 * bytes before each file's bytes flow, and may refuse (the quota, shared with concurrent writes).
 * Modes keep only permission bits (set-id bits dropped); owners are the sink's to choose. Rejects
 * with a 4xx AppError; whatever reached the sink must then be discarded by the caller.
 */
export async function repackArchive(source: Readable, sink: ImportSink, limits: ImportLimits, reserve: (declaredBytes: number) => void = () => undefined): Promise<ImportTotals> {
  const totals: ImportTotals = { entries: 0, files: 0, bytes: 0 };
  const reader = extract();
  // Every folder gets its own entry (owned by the runtime user): a folder the engine creates
  // implicitly for a nested file would belong to root, and the agent could not move out of it.
  const folders = new Set<string>();
  const folder = async (path: string, mode: number, mtime: Date): Promise<void> => {
    if (folders.has(path)) return;
    const parent = posix.dirname(path);
    if (parent !== '.') await folder(parent, 0o755, mtime);
    folders.add(path);
    await sink.directory(path, mode, mtime);
  };
  const parentsOf = async (path: string, mtime: Date) => {
    const parent = posix.dirname(path);
    if (parent !== '.') await folder(parent, 0o755, mtime);
  };
  /** Links this archive creates: nothing may be unpacked through one (a chain of links could climb out). */
  const links = new Set<string>();
  const throughLink = (path: string) => {
    for (let parent = posix.dirname(path); parent !== '.'; parent = posix.dirname(parent)) if (links.has(parent)) return parent;
    return null;
  };
  /** Checks an entry at once (a refusal throws before its bytes are read) and returns the sink's work. */
  const place = (header: Header, body: Readable): Promise<void> => {
    totals.entries++;
    if (totals.entries > limits.maxEntries) {
      throw tooLarge('ARCHIVE_TOO_MANY_ENTRIES', `The archive has more than ${limits.maxEntries} entries, the limit for one import.`);
    }
    const path = safeEntryPath(header.name);
    const link = path === null ? null : throughLink(path);
    if (link) throw unsafe(`"${preview(header.name)}" lies beneath the symbolic link "${preview(link)}" of the same archive.`);
    const mtime = header.mtime ?? new Date();
    switch (header.type) {
      case 'directory':
        return path === null ? Promise.resolve() : folder(path, ((header.mode ?? 0o755) & 0o777) | 0o700, mtime);
      case 'file':
      case 'contiguous-file': {
        if (path === null) throw unsafe('A file entry has an empty name.');
        const size = header.size ?? 0;
        if (size > limits.maxFileBytes) {
          throw tooLarge('FILE_TOO_LARGE', `"${preview(path)}" is ${size} bytes; the largest file allowed is ${limits.maxFileBytes} bytes.`);
        }
        totals.bytes += size;
        if (totals.bytes > limits.maxTotalBytes) {
          throw tooLarge('ARCHIVE_TOO_LARGE', `The archive unpacks to more than ${limits.maxTotalBytes} bytes (${limits.totalLimitReason}).`);
        }
        reserve(totals.bytes);
        totals.files++;
        return parentsOf(path, mtime).then(() => sink.file(path, size, ((header.mode ?? 0o644) & 0o777) | 0o600, mtime, body));
      }
      case 'symlink': {
        if (path === null) throw unsafe('A link entry has an empty name.');
        const target = checkLinkTarget(path, header.linkname);
        links.add(path);
        totals.files++;
        return parentsOf(path, mtime).then(() => sink.symlink(path, target, mtime));
      }
      case 'link':
        throw unsafe(`"${preview(header.name)}" is a hard link; hard links cannot be imported.`);
      case 'character-device':
      case 'block-device':
      case 'fifo':
        throw unsafe(`"${preview(header.name)}" is a ${header.type.replace('-', ' ')}; only files, folders and links can be imported.`);
      default:
        throw unsafe(`"${preview(header.name)}" has the unsupported entry type ${String(header.type)}.`);
    }
  };
  reader.on('entry', (header, body, next) => {
    // Destroying the reader destroys this entry with the same error: it must have a listener.
    body.on('error', () => undefined);
    let ended = false;
    body.once('end', () => (ended = true));
    const fail = (err: unknown) => {
      body.resume();
      reader.destroy(err instanceof Error ? err : new Error(String(err)));
    };
    let work: Promise<void>;
    try {
      // tar-stream's entries are streamx streams; the sink gets a Node stream over the same bytes.
      work = place(header, Readable.from(body as AsyncIterable<Buffer>, { objectMode: false }));
    } catch (err) {
      return fail(err);
    }
    work.then(
      () => {
        // Whatever the sink did not read (a folder's or link's body is empty) is skipped.
        if (ended) return next();
        body.once('end', () => next());
        body.resume();
      },
      fail,
    );
  });
  try {
    const head = await peek(source);
    if (head[0] === 0x1f && head[1] === 0x8b) await pipeline(source, createGunzip(), reader);
    else await pipeline(source, reader);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw badRequest('ARCHIVE_INVALID', `The archive could not be read (is it a complete .tar or .tar.gz?): ${(err as Error).message}`);
  }
  if (totals.entries === 0) throw badRequest('ARCHIVE_INVALID', 'The archive is empty or not a tar archive.');
  return totals;
}

const preview = (value: string) => (value.length > 80 ? `${value.slice(0, 80)}…` : value);
