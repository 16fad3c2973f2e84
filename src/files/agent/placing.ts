import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { posix } from 'node:path';
import { lstatOrNull, show } from './paths';
import { Refusal } from './refusal';

/** Same formula as the control plane's (workspaceFiles): an ETag from a read matches the one a write checks. */
export const etagOf = (content: Buffer): string => `"sha256-${createHash('sha256').update(content).digest('base64url')}"`;

/** Puts a staged entry at `final`: replacing only when asked, keeping a replaced file's mode. */
export function place(staged: string, final: string, overwrite: boolean, rel: string): void {
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
}

/** Bytes, files and folders of a tree (the folder itself counted), links not followed. */
export function measure(real: string): { bytes: number; files: number; dirs: number } {
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
}

/** Removes a staging folder, and any sibling a crashed or stopped operation left more than a day ago. */
export function discard(staging: string): void {
  fs.rmSync(staging, { recursive: true, force: true });
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
}
