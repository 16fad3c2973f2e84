import type * as CryptoModule from 'node:crypto';
import type * as FsModule from 'node:fs';
import type { Stats } from 'node:fs';
import type * as PathModule from 'node:path';

/**
 * The part of the file manager that runs INSIDE a user's container (`docker exec`, as uid 1000,
 * `node -e`), because only there can a directory be listed in O(entries), a symlink be resolved
 * the way the runtime sees it, or a staged file be renamed into place atomically. The Docker
 * archive API moves the bytes; this moves names.
 *
 * `runFileAgent` is shipped by its source text (Function.prototype.toString), so it must be
 * self-contained: no imports, no helpers outside its body, synchronous Node built-ins only
 * (passed in as `modules`), nothing a compiler would hoist out of it. The unit tests call it
 * directly against a temporary directory.
 *
 * Running as the runtime's own user means the worst a race with the user's agent can achieve
 * (swapping a checked folder for a symlink between check and use) is what that agent could do
 * itself: no privilege is borrowed from the control plane.
 */

export interface AgentModules {
  fs: typeof FsModule;
  path: typeof PathModule;
  crypto: typeof CryptoModule;
}

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

export interface AgentEntry {
  name: string;
  type: EntryType;
  size: number;
  mtimeMs: number;
  mode: number;
  /** Symlinks only: what the link says, and what it leads to (null when broken or outside the root). */
  target?: string;
  targetType?: EntryType | null;
}

export interface AgentConflict {
  path: string;
  reason: 'exists' | 'is-directory' | 'blocked-by-file';
}

export interface StagedFile {
  /** Name of the staged file inside the staging directory. */
  name: string;
  /** Destination, relative to `dir`. */
  path: string;
}

interface RootRequest {
  /** Absolute path of the file root inside the container; the API's paths are relative to it. */
  root: string;
}

export type AgentRequest =
  | (RootRequest & { op: 'list'; path: string })
  | (RootRequest & { op: 'stat'; path: string })
  | (RootRequest & { op: 'mkdir'; path: string; parents: boolean })
  | (RootRequest & { op: 'move'; from: string; to: string; overwrite: boolean })
  | (RootRequest & { op: 'remove'; path: string; recursive: boolean })
  | (RootRequest & { op: 'usage' })
  | (RootRequest & { op: 'conflicts'; dir: string; paths: string[]; overwrite: boolean })
  | (RootRequest & { op: 'commit'; staging: string; dir: string; files: StagedFile[]; overwrite: boolean })
  | (RootRequest & { op: 'commitTree'; staging: string; dir: string; overwrite: boolean })
  | (RootRequest & { op: 'replaceText'; staging: string; name: string; path: string; ifMatch: string | null; ifNoneMatch: boolean })
  | { op: 'discard'; staging: string };

export interface AgentFailure {
  ok: false;
  code: string;
  message: string;
  conflicts?: AgentConflict[];
  etag?: string;
}
export type AgentResponse = { ok: true; result: unknown } | AgentFailure;

export function runFileAgent(request: AgentRequest, modules: AgentModules): AgentResponse {
  const { fs, path: posix, crypto } = modules;

  class Refusal extends Error {
    constructor(
      readonly code: string,
      message: string,
      readonly extra: { conflicts?: AgentConflict[]; etag?: string } = {},
    ) {
      super(message);
    }
  }

  const lstatOrNull = (p: string) => {
    try {
      return fs.lstatSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
      throw err;
    }
  };
  const typeOf = (st: Stats): EntryType =>
    st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other';
  const etagOf = (content: Buffer) => `"sha256-${crypto.createHash('sha256').update(content).digest('base64url')}"`;
  const show = (rel: string) => (rel === '' ? 'your workspace folder' : `"${rel}"`);

  // ---- the root and paths under it ----

  let realRoot: string | null = null;
  /** The root, created on demand for writes; null for reads of a workspace that has none yet. */
  const root = (create: boolean): string | null => {
    if (realRoot) return realRoot;
    const rootPath = (request as RootRequest).root;
    let st = lstatOrNull(rootPath);
    if (!st && create) {
      fs.mkdirSync(rootPath, { recursive: true, mode: 0o755 });
      st = fs.lstatSync(rootPath);
    }
    if (!st) return null;
    // The root itself must be a real folder: were it a link, everything under it could be anywhere.
    if (!st.isDirectory()) throw new Refusal('ROOT_UNAVAILABLE', `The workspace folder ${rootPath} is not a folder; fix or remove it from inside the runtime.`);
    realRoot = fs.realpathSync(rootPath);
    return realRoot;
  };
  const requireRoot = () => root(true) as string;
  const inside = (real: string) => {
    const base = requireRoot();
    return real === base || real.startsWith(`${base}/`);
  };
  const segmentsOf = (rel: string) => (rel === '' ? [] : rel.split('/'));

  /** Follows every symlink of an existing path; refuses one that ends up outside the root. */
  const resolveExisting = (rel: string): string => {
    const base = root(false);
    if (base === null) throw new Refusal('NOT_FOUND', `${show(rel)} does not exist.`);
    let real: string;
    try {
      real = fs.realpathSync(posix.join(base, rel));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') throw new Refusal('NOT_FOUND', `${show(rel)} does not exist.`);
      throw err;
    }
    if (!inside(real)) throw new Refusal('PATH_OUTSIDE_ROOT', `${show(rel)} leads outside your workspace through a symbolic link.`);
    return real;
  };

  const resolveDir = (rel: string): string => {
    const real = resolveExisting(rel);
    if (!fs.statSync(real).isDirectory()) throw new Refusal('NOT_A_DIRECTORY', `${show(rel)} is not a folder.`);
    return real;
  };

  /** The folder an entry lives in (resolved) and the entry's own path (NOT followed). */
  const resolveEntry = (rel: string): { parent: string; target: string; name: string } => {
    const segments = segmentsOf(rel);
    const name = segments.pop();
    if (name === undefined) throw new Refusal('INVALID_PATH', 'This needs a path inside your workspace, not the workspace itself.');
    const parent = resolveDir(segments.join('/'));
    return { parent, target: `${parent}/${name}`, name };
  };

  /** Walks `segments` below `base`, creating missing folders (uid 1000, 0755); refuses files and outside links in the way. */
  const ensureDirs = (base: string, segments: string[], relPrefix: string): string => {
    let current = base;
    let rel = relPrefix;
    for (const segment of segments) {
      rel = rel ? `${rel}/${segment}` : segment;
      const next = `${current}/${segment}`;
      const st = lstatOrNull(next);
      if (!st) {
        try {
          fs.mkdirSync(next, { mode: 0o755 });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
        current = next;
      } else if (st.isDirectory()) current = next;
      else if (st.isSymbolicLink()) {
        const real = fs.realpathSync(next);
        if (!inside(real)) throw new Refusal('PATH_OUTSIDE_ROOT', `${show(rel)} leads outside your workspace through a symbolic link.`);
        if (!fs.statSync(real).isDirectory()) throw new Refusal('NOT_A_DIRECTORY', `${show(rel)} is a file, not a folder.`);
        current = real;
      } else throw new Refusal('NOT_A_DIRECTORY', `${show(rel)} is a file, not a folder.`);
    }
    return current;
  };

  /** Checks a destination without changing anything: what would stop a file from landing at `rel` under `dirReal`. */
  const conflictAt = (dirReal: string | null, rel: string, overwrite: boolean, fullRel: string): AgentConflict | null => {
    if (dirReal === null) return null;
    let current = dirReal;
    const segments = segmentsOf(rel);
    for (let i = 0; i < segments.length; i++) {
      const next = `${current}/${segments[i]}`;
      const st = lstatOrNull(next);
      if (!st) return null;
      const last = i === segments.length - 1;
      if (last) {
        if (st.isDirectory()) return { path: fullRel, reason: 'is-directory' };
        return overwrite ? null : { path: fullRel, reason: 'exists' };
      }
      if (st.isDirectory()) current = next;
      else if (st.isSymbolicLink()) {
        let real: string;
        try {
          real = fs.realpathSync(next);
        } catch {
          return { path: fullRel, reason: 'blocked-by-file' };
        }
        if (!inside(real) || !fs.statSync(real).isDirectory()) return { path: fullRel, reason: 'blocked-by-file' };
        current = real;
      } else return { path: fullRel, reason: 'blocked-by-file' };
    }
    return null;
  };

  const existingDirOrNull = (rel: string): string | null => {
    try {
      return resolveDir(rel);
    } catch (err) {
      if (err instanceof Refusal && err.code === 'NOT_FOUND') return null;
      throw err;
    }
  };

  const joinRel = (a: string, b: string) => (a === '' ? b : b === '' ? a : `${a}/${b}`);

  /** Puts a staged entry at `final`: replacing only when asked, keeping a replaced file's mode. */
  const place = (staged: string, final: string, overwrite: boolean, rel: string) => {
    const existing = lstatOrNull(final);
    if (existing) {
      if (existing.isDirectory()) throw new Refusal('CONFLICT', `${show(rel)} is a folder.`, { conflicts: [{ path: rel, reason: 'is-directory' }] });
      if (!overwrite) throw new Refusal('CONFLICT', `${show(rel)} already exists.`, { conflicts: [{ path: rel, reason: 'exists' }] });
      if (existing.isFile()) fs.chmodSync(staged, existing.mode & 0o7777);
      fs.renameSync(staged, final);
      return;
    }
    // link() fails if the name appeared meanwhile: the no-overwrite promise holds even in a race.
    const st = fs.lstatSync(staged);
    if (st.isDirectory()) fs.renameSync(staged, final);
    else {
      try {
        fs.linkSync(staged, final);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new Refusal('CONFLICT', `${show(rel)} already exists.`, { conflicts: [{ path: rel, reason: 'exists' }] });
        throw err;
      }
      fs.unlinkSync(staged);
    }
  };

  const measure = (real: string): { bytes: number; files: number; dirs: number } => {
    const totals = { bytes: 0, files: 0, dirs: 0 };
    const stack = [real];
    while (stack.length > 0) {
      const current = stack.pop() as string;
      const st = fs.lstatSync(current);
      if (st.isDirectory()) {
        totals.dirs++;
        for (const name of fs.readdirSync(current)) stack.push(`${current}/${name}`);
      } else {
        totals.files++;
        if (st.isFile()) totals.bytes += st.size;
      }
    }
    return totals;
  };

  const discard = (staging: string) => {
    fs.rmSync(staging, { recursive: true, force: true });
    // Staging folders of operations cut short by a crash or a stop are cleared a day later.
    const parent = posix.dirname(staging);
    const dayAgo = Date.now() - 24 * 3600_000;
    let siblings: string[] = [];
    try {
      siblings = fs.readdirSync(parent);
    } catch {
      return;
    }
    for (const name of siblings) {
      const stale = lstatOrNull(`${parent}/${name}`);
      if (stale && stale.mtimeMs < dayAgo) fs.rmSync(`${parent}/${name}`, { recursive: true, force: true });
    }
  };

  // ---- operations ----

  const run = (): unknown => {
    switch (request.op) {
      case 'list': {
        const base = root(false);
        if (base === null && request.path === '') return { entries: [] };
        const dir = resolveDir(request.path);
        const entries: AgentEntry[] = [];
        for (const dirent of fs.readdirSync(dir, { withFileTypes: true })) {
          const full = `${dir}/${dirent.name}`;
          const st = lstatOrNull(full);
          if (!st) continue; // removed while listing
          const entry: AgentEntry = { name: dirent.name, type: typeOf(st), size: st.isFile() ? st.size : 0, mtimeMs: Math.round(st.mtimeMs), mode: st.mode & 0o7777 };
          if (st.isSymbolicLink()) {
            entry.target = fs.readlinkSync(full);
            try {
              const real = fs.realpathSync(full);
              entry.targetType = inside(real) ? typeOf(fs.statSync(real)) : null;
            } catch {
              entry.targetType = null;
            }
          }
          entries.push(entry);
        }
        return { entries };
      }
      case 'stat': {
        const real = resolveExisting(request.path);
        const st = fs.statSync(real);
        return { realPath: real, type: typeOf(st), size: st.isFile() ? st.size : 0, mtimeMs: Math.round(st.mtimeMs), mode: st.mode & 0o7777 };
      }
      case 'mkdir': {
        requireRoot();
        const segments = segmentsOf(request.path);
        const name = segments.pop();
        if (name === undefined) throw new Refusal('INVALID_PATH', 'Name the folder to create.');
        const parent = request.parents ? ensureDirs(requireRoot(), segments, '') : resolveDir(segments.join('/'));
        try {
          fs.mkdirSync(`${parent}/${name}`, { mode: 0o755 });
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new Refusal('ALREADY_EXISTS', `${show(request.path)} already exists.`);
          throw err;
        }
        return { path: request.path };
      }
      case 'move': {
        const from = resolveEntry(request.from);
        const source = lstatOrNull(from.target);
        if (!source) throw new Refusal('NOT_FOUND', `${show(request.from)} does not exist.`);
        const to = resolveEntry(request.to);
        if (to.target === from.target) return { from: request.from, to: request.to };
        if (source.isDirectory() && (to.parent === from.target || to.parent.startsWith(`${from.target}/`))) {
          throw new Refusal('INVALID_MOVE', `A folder cannot be moved into itself (${show(request.to)}).`);
        }
        const existing = lstatOrNull(to.target);
        if (existing) {
          if (!request.overwrite) throw new Refusal('ALREADY_EXISTS', `${show(request.to)} already exists; ask to overwrite it to replace it.`);
          if (existing.isDirectory()) throw new Refusal('CONFLICT', `${show(request.to)} is a folder; delete it first to replace it.`);
          if (source.isDirectory()) throw new Refusal('CONFLICT', `${show(request.to)} is a file and ${show(request.from)} is a folder.`);
        }
        if (existing || source.isDirectory()) fs.renameSync(from.target, to.target);
        else place(from.target, to.target, false, request.to);
        return { from: request.from, to: request.to };
      }
      case 'remove': {
        const entry = resolveEntry(request.path);
        const st = lstatOrNull(entry.target);
        if (!st) throw new Refusal('NOT_FOUND', `${show(request.path)} does not exist.`);
        if (st.isDirectory()) {
          if (!request.recursive) throw new Refusal('RECURSIVE_REQUIRED', `${show(request.path)} is a folder; deleting it and everything in it needs recursive=1.`);
          const totals = measure(entry.target);
          fs.rmSync(entry.target, { recursive: true });
          return totals;
        }
        fs.unlinkSync(entry.target);
        return { bytes: st.isFile() ? st.size : 0, files: 1, dirs: 0 };
      }
      case 'usage': {
        const base = root(false);
        if (base === null) return { bytes: 0, files: 0, dirs: 0 };
        const totals = measure(base);
        return { ...totals, dirs: totals.dirs - 1 };
      }
      case 'conflicts': {
        const dir = existingDirOrNull(request.dir);
        const conflicts: AgentConflict[] = [];
        for (const rel of request.paths) {
          const conflict = conflictAt(dir, rel, request.overwrite, joinRel(request.dir, rel));
          if (conflict) conflicts.push(conflict);
        }
        return { conflicts };
      }
      case 'commit': {
        try {
          requireRoot();
          const existingDir = existingDirOrNull(request.dir);
          const conflicts: AgentConflict[] = [];
          const paths = new Set(request.files.map((file) => file.path));
          for (const file of request.files) {
            const conflict = conflictAt(existingDir, file.path, request.overwrite, joinRel(request.dir, file.path));
            if (conflict) conflicts.push(conflict);
            // "a" and "a/b.txt" in one request: "a" cannot be a file and a folder.
            for (let parent = posix.dirname(file.path); parent !== '.'; parent = posix.dirname(parent)) {
              if (paths.has(parent)) conflicts.push({ path: joinRel(request.dir, parent), reason: 'blocked-by-file' });
            }
          }
          if (conflicts.length > 0) throw new Refusal('CONFLICT', `${conflicts.length} of the names are taken.`, { conflicts });
          const dir = existingDir ?? ensureDirs(requireRoot(), segmentsOf(request.dir), '');
          const written: { path: string; size: number }[] = [];
          for (const file of request.files) {
            const segments = segmentsOf(file.path);
            const name = segments.pop() as string;
            const parent = ensureDirs(dir, segments, request.dir);
            const staged = `${request.staging}/${file.name}`;
            const size = fs.lstatSync(staged).size;
            place(staged, `${parent}/${name}`, request.overwrite, joinRel(request.dir, file.path));
            written.push({ path: joinRel(request.dir, file.path), size });
          }
          return { written };
        } finally {
          discard(request.staging);
        }
      }
      case 'commitTree': {
        try {
          requireRoot();
          const tree = `${request.staging}/tree`;
          // Everything staged, parents before children.
          const staged: { rel: string; dir: boolean }[] = [];
          const stack = [''];
          while (stack.length > 0) {
            const rel = stack.pop() as string;
            for (const dirent of fs.readdirSync(rel ? `${tree}/${rel}` : tree, { withFileTypes: true })) {
              const child = joinRel(rel, dirent.name);
              staged.push({ rel: child, dir: dirent.isDirectory() });
              if (dirent.isDirectory()) stack.push(child);
            }
          }
          staged.sort((a, b) => a.rel.split('/').length - b.rel.split('/').length);
          const existingDir = existingDirOrNull(request.dir);
          const conflicts: AgentConflict[] = [];
          for (const entry of staged) {
            if (entry.dir) {
              // Folders merge into existing folders; anything else at the name (a file, a link) blocks them.
              const conflict = conflictAt(existingDir, entry.rel, false, joinRel(request.dir, entry.rel));
              if (conflict && conflict.reason !== 'is-directory') conflicts.push({ ...conflict, reason: 'blocked-by-file' });
            } else {
              const conflict = conflictAt(existingDir, entry.rel, request.overwrite, joinRel(request.dir, entry.rel));
              if (conflict) conflicts.push(conflict);
            }
          }
          if (conflicts.length > 0) throw new Refusal('CONFLICT', `${conflicts.length} of the names are taken.`, { conflicts });
          const dir = existingDir ?? ensureDirs(requireRoot(), segmentsOf(request.dir), '');
          let files = 0;
          let bytes = 0;
          for (const entry of staged) {
            const segments = segmentsOf(entry.rel);
            if (entry.dir) {
              ensureDirs(dir, segments, request.dir);
              continue;
            }
            const name = segments.pop() as string;
            const parent = ensureDirs(dir, segments, request.dir);
            const from = `${tree}/${entry.rel}`;
            const st = fs.lstatSync(from);
            place(from, `${parent}/${name}`, request.overwrite, joinRel(request.dir, entry.rel));
            files++;
            if (st.isFile()) bytes += st.size;
          }
          return { files, dirs: staged.length - files, bytes };
        } finally {
          discard(request.staging);
        }
      }
      case 'replaceText': {
        try {
          const staged = `${request.staging}/${request.name}`;
          const content = fs.readFileSync(staged);
          const entry = resolveEntry(request.path);
          const st = lstatOrNull(entry.target);
          if (!st) {
            if (request.ifMatch !== null) throw new Refusal('PRECONDITION_FAILED', `${show(request.path)} was deleted since you opened it.`);
            place(staged, entry.target, false, request.path);
          } else {
            const real = resolveExisting(request.path);
            if (!fs.statSync(real).isFile()) throw new Refusal('NOT_A_FILE', `${show(request.path)} is not a file.`);
            const current = etagOf(fs.readFileSync(real));
            if (request.ifNoneMatch) throw new Refusal('PRECONDITION_FAILED', `${show(request.path)} already exists.`, { etag: current });
            if (request.ifMatch !== '*' && request.ifMatch !== current) {
              throw new Refusal('PRECONDITION_FAILED', `${show(request.path)} was changed since you opened it.`, { etag: current });
            }
            fs.chmodSync(staged, fs.statSync(real).mode & 0o7777);
            fs.renameSync(staged, real);
          }
          return { etag: etagOf(content), size: content.length };
        } catch (err) {
          if ((err as Refusal).code === 'CONFLICT') throw new Refusal('PRECONDITION_FAILED', `${show(request.path)} was created meanwhile.`);
          throw err;
        } finally {
          discard(request.staging);
        }
      }
      case 'discard':
        discard(request.staging);
        return {};
    }
  };

  const FS_ERRORS: Record<string, [string, string]> = {
    ENOENT: ['NOT_FOUND', 'does not exist'],
    EACCES: ['PERMISSION_DENIED', "is not accessible to the runtime's user (uid 1000)"],
    EPERM: ['PERMISSION_DENIED', "is not accessible to the runtime's user (uid 1000)"],
    ENOSPC: ['NO_SPACE', 'could not be written: the disk is full'],
    EDQUOT: ['NO_SPACE', 'could not be written: the disk quota is exhausted'],
    ENAMETOOLONG: ['NAME_TOO_LONG', 'has a name that is too long'],
    ENOTDIR: ['NOT_A_DIRECTORY', 'has a file where a folder should be'],
    EISDIR: ['CONFLICT', 'is a folder'],
    EEXIST: ['ALREADY_EXISTS', 'already exists'],
    ENOTEMPTY: ['CONFLICT', 'is a folder that is not empty'],
    ELOOP: ['NOT_FOUND', 'is a loop of symbolic links'],
    EROFS: ['PERMISSION_DENIED', 'is on a read-only file system'],
  };

  try {
    return { ok: true, result: run() };
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, code: err.code, message: err.message, ...err.extra };
    const errno = err as NodeJS.ErrnoException;
    const known = errno.code ? FS_ERRORS[errno.code] : undefined;
    // Container paths stay out of the message: the user knows their files by workspace paths.
    if (known) return { ok: false, code: known[0], message: `The path ${known[1]}.` };
    return { ok: false, code: 'AGENT_FAILED', message: `The file operation failed inside the runtime: ${errno.code ?? errno.message}` };
  }
}

/**
 * The script `docker exec` runs: reads one request as JSON on stdin, writes one response as
 * JSON on stdout. Built once from the compiled function above.
 */
export const FILE_AGENT_SCRIPT = `'use strict';
// Some TypeScript runners (tsx, esbuild) wrap named functions in __name(); it is not shipped with the text.
var __name = (target) => target;
const run = ${runFileAgent.toString()};
let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const response = run(JSON.parse(input), { fs: require('fs'), path: require('path').posix, crypto: require('crypto') });
  process.stdout.write(JSON.stringify(response));
});
`;
