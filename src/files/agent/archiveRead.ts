import { constants as fsConstants, type Stats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { pack, type Header, type Pack } from 'tar-stream';
import { lstatOrNull } from './serverPaths';

/**
 * Packs one entry of the volume into a tar stream the way the Docker engine's archive read
 * (getArchive) does for the file manager and the backups: the entry itself, named by its base
 * name, and for a folder everything under it (`name/child/...`, folders named with a trailing
 * slash), in name order. Links are never followed: a symlink is a symlink entry; a file with more
 * than one link appears whole the first time and as a hard link entry (`linkname`: the name it
 * first appeared under) every time after. Long or non-ASCII names are written the way tar-stream
 * writes them (the ustar prefix field, or a PAX header). Sockets, fifos and devices are left out.
 *
 * The walk goes only as fast as the stream is read (a file's bytes a chunk at a time; the next
 * entry only once the consumer has taken what was written), and stops when `signal` aborts.
 *
 * A file is read as it is when its entry is written: if it grows meanwhile, only the bytes its
 * header announced are sent; if it shrinks, the rest is zeros, so the archive stays well formed.
 * An entry that cannot be read (a file or folder whose mode shuts its owner out; Docker, reading
 * as root, would not have been stopped by it) is left out and reported through `onSkipped`.
 */

const CHUNK = 256 * 1024;

type HeaderArgument = Partial<Header> & Pick<Header, 'name'>;

export interface PackOptions {
  signal: AbortSignal;
  /** Where the packed bytes go; written with backpressure. */
  sink: Writable;
  onSkipped?: (path: string, err: Error) => void;
}

class Aborted extends Error {
  constructor() {
    super('the archive read was stopped');
  }
}

interface Drainable {
  readonly destroyed: boolean;
  /** streamx's: true from the moment destroy() is called. */
  readonly destroying?: boolean;
  once(e: string, f: () => void): unknown;
  off(e: string, f: () => void): unknown;
}

/** Resolves once `stream` wants more, or is gone (or going: it will not say so again). */
function whenDrained(stream: Drainable): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || stream.destroying === true) return resolve();
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.once('drain', done);
    stream.once('close', done);
  });
}

interface Frame {
  path: string;
  name: string;
  children: string[];
  next: number;
}

const skippable = (err: unknown): boolean => {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES' || code === 'EPERM' || code === 'ELOOP';
};

export class ArchiveReader {
  private readonly archive: Pack = pack();
  /** dev:ino → the name the file first appeared under, for files with more than one link. */
  private readonly linked = new Map<string, string>();

  constructor(private readonly options: PackOptions) {
    // Failures reach the caller through run(); an 'error' nobody listens for would end the process.
    this.archive.on('error', () => undefined);
    this.archive.pipe(options.sink);
    // Whatever the walk waits for (the consumer to drain, an entry to be taken) ends with the archive.
    const stop = () => this.archive.destroy(new Aborted());
    if (options.signal.aborted) stop();
    else options.signal.addEventListener('abort', stop, { once: true });
  }

  /** Packs `path` (lstat'ed as `stats`) as `name`; resolves once the end of the archive is written. */
  async run(path: string, name: string, stats: Stats): Promise<void> {
    try {
      const stack: Frame[] = [];
      const top = await this.add(path, name, stats);
      if (top) stack.push(top);
      while (stack.length > 0) {
        this.check();
        const frame = stack[stack.length - 1] as Frame;
        const child = frame.children[frame.next++];
        if (child === undefined) {
          stack.pop();
          continue;
        }
        const childPath = `${frame.path}/${child}`;
        let st: Stats | null;
        try {
          st = await lstatOrNull(childPath);
        } catch (err) {
          if (!skippable(err)) throw err;
          this.skipped(childPath, err);
          continue;
        }
        if (!st) continue; // removed since the folder was read
        const folder = await this.add(childPath, `${frame.name}/${child}`, st);
        if (folder) stack.push(folder);
      }
      this.check();
      await new Promise<void>((resolve) => {
        this.archive.once('end', resolve);
        this.archive.once('close', resolve);
        this.archive.finalize();
      });
    } catch (err) {
      const stopped = err instanceof Aborted || this.options.signal.aborted;
      this.archive.destroy(stopped ? new Aborted() : (err as Error));
      if (!stopped) throw err;
    }
  }

  private check(): void {
    if (this.options.signal.aborted || this.archive.destroyed) throw new Aborted();
  }

  private skipped(path: string, err: unknown): void {
    this.options.onSkipped?.(path, err as Error);
  }

  /** Waits while the consumer has not taken what was written: the walk must not run ahead of it. */
  private async paced(): Promise<void> {
    while (this.options.sink.writableNeedDrain && !this.options.sink.destroyed) {
      this.check();
      await whenDrained(this.options.sink);
    }
    this.check();
  }

  private header(name: string, st: Stats, extra: Partial<Header>): HeaderArgument {
    return { name, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime, size: 0, ...extra };
  }

  /** Writes a header-only entry and waits for it to be taken. */
  private async simple(header: HeaderArgument): Promise<void> {
    await this.paced();
    await new Promise<void>((resolve, reject) => {
      this.archive.entry(header, (err) => (err ? reject(err) : resolve())).on('error', () => undefined);
    });
  }

  /** One entry; a folder's frame when it is one whose children come next. */
  private async add(path: string, name: string, st: Stats): Promise<Frame | null> {
    if (st.isDirectory()) {
      let children: string[];
      try {
        children = (await fsp.readdir(path)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      } catch (err) {
        if (!skippable(err)) throw err;
        this.skipped(path, err);
        return null;
      }
      await this.simple(this.header(`${name}/`, st, { type: 'directory' }));
      return { path, name, children, next: 0 };
    }
    if (st.isSymbolicLink()) {
      let target: string;
      try {
        target = await fsp.readlink(path);
      } catch (err) {
        if (!skippable(err)) throw err;
        this.skipped(path, err);
        return null;
      }
      await this.simple(this.header(name, st, { type: 'symlink', linkname: target }));
      return null;
    }
    if (st.isFile()) await this.file(path, name, st);
    return null;
  }

  private async file(path: string, name: string, listed: Stats): Promise<void> {
    let key: string | null = null;
    if (listed.nlink > 1) {
      // Inode numbers can pass 2^53: compared as bigints.
      const big = await fsp.lstat(path, { bigint: true }).catch(() => null);
      if (big) {
        key = `${big.dev}:${big.ino}`;
        const first = this.linked.get(key);
        if (first !== undefined) {
          await this.simple(this.header(name, listed, { type: 'link', linkname: first }));
          return;
        }
      }
    }
    let file: fsp.FileHandle;
    try {
      file = await fsp.open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    } catch (err) {
      if (!skippable(err)) throw err;
      this.skipped(path, err);
      return;
    }
    try {
      // What was opened, which may not be what was listed a moment ago.
      const st = await file.stat();
      if (!st.isFile()) return;
      if (key !== null) this.linked.set(key, name);
      await this.paced();
      const size = st.size;
      let written = 0;
      const entry = this.archive.entry(this.header(name, st, { type: 'file', size }));
      const ended = new Promise<void>((resolve, reject) => {
        entry.on('error', reject);
        entry.once('finish', resolve);
        entry.once('close', resolve);
      });
      // Awaited only once all bytes are written: a failure before that is heard by the writes.
      ended.catch(() => undefined);
      while (written < size) {
        this.check();
        const want = Math.min(CHUNK, size - written);
        const buffer = Buffer.allocUnsafe(want);
        const { bytesRead } = await file.read(buffer, 0, want, written);
        this.check();
        // Shrunk since it was opened: zeros keep the entry as long as its header says.
        const chunk = bytesRead === 0 ? buffer.fill(0) : buffer.subarray(0, bytesRead);
        written += chunk.length;
        if (!entry.write(chunk)) await whenDrained(entry);
      }
      entry.end(null);
      await ended;
      this.check();
    } finally {
      await file.close().catch(() => undefined);
    }
  }
}

/** Packs `path` into `sink`, see ArchiveReader. Rejects only for a failure (not when `signal` stopped it). */
export function packArchive(path: string, name: string, stats: Stats, options: PackOptions): Promise<void> {
  return new ArchiveReader(options).run(path, name, stats);
}
