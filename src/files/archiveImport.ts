import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract, type Header, type Pack } from 'tar-stream';
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
 * Reads an uploaded .tar or .tar.gz and re-packs every entry into `out` under `prefix`, after
 * checking it: relative paths without "..", links that stay inside, no devices, FIFOs or hard
 * links, entry count and declared sizes within limits (checked from the header, before its
 * bytes are read, so an archive bomb stops at its first oversized header). Owners become the
 * runtime's user; set-id bits are dropped. Rejects with a 4xx AppError; `out` is then unusable
 * and whatever it reached must be discarded by the caller.
 */
export async function repackArchive(source: Readable, out: Pack, prefix: string, limits: ImportLimits, uid: number): Promise<ImportTotals> {
  const totals: ImportTotals = { entries: 0, files: 0, bytes: 0 };
  const reader = extract();
  // Every folder gets its own entry, owned by the runtime user: a folder the engine creates
  // implicitly for a nested file would belong to root, and the agent could not move out of it.
  const folders = new Set<string>();
  const folder = (path: string, mode: number, mtime: Date) => {
    if (folders.has(path)) return;
    const parent = posix.dirname(path);
    if (parent !== '.') folder(parent, 0o755, mtime);
    folders.add(path);
    out.entry({ uid, gid: uid, mtime, name: `${prefix}/${path}`, type: 'directory', mode });
  };
  const parentsOf = (path: string, mtime: Date) => {
    const parent = posix.dirname(path);
    if (parent !== '.') folder(parent, 0o755, mtime);
  };
  out.entry({ uid, gid: uid, mtime: new Date(), name: prefix, type: 'directory', mode: 0o700 });
  /** Links this archive creates: nothing may be unpacked through one (a chain of links could climb out). */
  const links = new Set<string>();
  const throughLink = (path: string) => {
    for (let parent = posix.dirname(path); parent !== '.'; parent = posix.dirname(parent)) if (links.has(parent)) return parent;
    return null;
  };
  reader.on('entry', (header: Header, body, next) => {
    // Destroying the reader destroys this entry with the same error: it must have a listener.
    body.on('error', () => undefined);
    const fail = (err: Error) => {
      body.resume();
      reader.destroy(err);
    };
    try {
      totals.entries++;
      if (totals.entries > limits.maxEntries) {
        throw tooLarge('ARCHIVE_TOO_MANY_ENTRIES', `The archive has more than ${limits.maxEntries} entries, the limit for one import.`);
      }
      const path = safeEntryPath(header.name);
      const link = path === null ? null : throughLink(path);
      if (link) throw unsafe(`"${preview(header.name)}" lies beneath the symbolic link "${preview(link)}" of the same archive.`);
      const base = { uid, gid: uid, mtime: header.mtime ?? new Date() };
      switch (header.type) {
        case 'directory': {
          if (path !== null) folder(path, ((header.mode ?? 0o755) & 0o777) | 0o700, base.mtime);
          body.resume();
          body.on('end', () => next());
          return;
        }
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
          totals.files++;
          parentsOf(path, base.mtime);
          const entry = out.entry({ ...base, name: `${prefix}/${path}`, type: 'file', size, mode: ((header.mode ?? 0o644) & 0o777) | 0o600 }, (err) => {
            if (err) fail(err);
            else next();
          });
          entry.on('error', fail);
          body.pipe(entry);
          body.on('error', fail);
          return;
        }
        case 'symlink': {
          if (path === null) throw unsafe('A link entry has an empty name.');
          const linkname = checkLinkTarget(path, header.linkname);
          links.add(path);
          totals.files++;
          parentsOf(path, base.mtime);
          out.entry({ ...base, name: `${prefix}/${path}`, type: 'symlink', linkname, mode: 0o777 });
          body.resume();
          body.on('end', () => next());
          return;
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
    } catch (err) {
      fail(err as Error);
    }
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
