import * as fs from 'node:fs';
import { posix } from 'node:path';
import { lstatOrNull, segmentsOf, show } from './paths';
import type { AgentConflict } from './protocol';
import { Refusal } from './refusal';

/**
 * The file root of one request and every path under it. Paths are resolved the way the runtime
 * sees them (symlinks followed inside the container), and one that ends up outside the root is
 * refused. The agent runs as the runtime's own user, so the worst a race with the user's agent
 * can achieve (swapping a checked folder for a symlink between check and use) is what that agent
 * could do itself: no privilege is borrowed from the control plane.
 */
export class WorkspaceRoot {
  private realRoot: string | null = null;

  constructor(private readonly rootPath: string) {}

  /** The root, created on demand for writes; null for reads of a workspace that has none yet. */
  get(create: boolean): string | null {
    if (this.realRoot) return this.realRoot;
    let st = lstatOrNull(this.rootPath);
    if (!st && create) {
      fs.mkdirSync(this.rootPath, { recursive: true, mode: 0o755 });
      st = fs.lstatSync(this.rootPath);
    }
    if (!st) return null;
    // The root itself must be a real folder: were it a link, everything under it could be anywhere.
    if (!st.isDirectory()) throw new Refusal('ROOT_UNAVAILABLE', `The workspace folder ${this.rootPath} is not a folder; fix or remove it from inside the runtime.`);
    this.realRoot = fs.realpathSync(this.rootPath);
    return this.realRoot;
  }

  require(): string {
    return this.get(true) as string;
  }

  inside(real: string): boolean {
    const base = this.require();
    return real === base || real.startsWith(`${base}/`);
  }

  /** Follows every symlink of an existing path; refuses one that ends up outside the root. */
  resolveExisting(rel: string): string {
    const base = this.get(false);
    if (base === null) throw new Refusal('NOT_FOUND', `${show(rel)} does not exist.`);
    let real: string;
    try {
      real = fs.realpathSync(posix.join(base, rel));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') throw new Refusal('NOT_FOUND', `${show(rel)} does not exist.`);
      throw err;
    }
    if (!this.inside(real)) throw new Refusal('PATH_OUTSIDE_ROOT', `${show(rel)} leads outside your workspace through a symbolic link.`);
    return real;
  }

  resolveDir(rel: string): string {
    const real = this.resolveExisting(rel);
    if (!fs.statSync(real).isDirectory()) throw new Refusal('NOT_A_DIRECTORY', `${show(rel)} is not a folder.`);
    return real;
  }

  /** A folder that exists, or null when it does not (yet). */
  existingDirOrNull(rel: string): string | null {
    try {
      return this.resolveDir(rel);
    } catch (err) {
      if (err instanceof Refusal && err.code === 'NOT_FOUND') return null;
      throw err;
    }
  }

  /** The folder an entry lives in (resolved) and the entry's own path (NOT followed). */
  resolveEntry(rel: string): { parent: string; target: string; name: string } {
    const segments = segmentsOf(rel);
    const name = segments.pop();
    if (name === undefined) throw new Refusal('INVALID_PATH', 'This needs a path inside your workspace, not the workspace itself.');
    const parent = this.resolveDir(segments.join('/'));
    return { parent, target: `${parent}/${name}`, name };
  }

  /** Walks `segments` below `base`, creating missing folders (uid 1000, 0755); refuses files and outside links in the way. */
  ensureDirs(base: string, segments: string[], relPrefix: string): string {
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
        if (!this.inside(real)) throw new Refusal('PATH_OUTSIDE_ROOT', `${show(rel)} leads outside your workspace through a symbolic link.`);
        if (!fs.statSync(real).isDirectory()) throw new Refusal('NOT_A_DIRECTORY', `${show(rel)} is a file, not a folder.`);
        current = real;
      } else throw new Refusal('NOT_A_DIRECTORY', `${show(rel)} is a file, not a folder.`);
    }
    return current;
  }

  /** Checks a destination without changing anything: what would stop a file from landing at `rel` under `dirReal`. */
  conflictAt(dirReal: string | null, rel: string, overwrite: boolean, fullRel: string): AgentConflict | null {
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
        if (!this.inside(real) || !fs.statSync(real).isDirectory()) return { path: fullRel, reason: 'blocked-by-file' };
        current = real;
      } else return { path: fullRel, reason: 'blocked-by-file' };
    }
    return null;
  }
}
