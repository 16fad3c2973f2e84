import type { Stats } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { posix } from 'node:path';
import { badRequest, ServerRefusal } from './serverErrors';

/**
 * Where the file server's archive streams may go: the folder a write unpacks into and the entry a
 * read packs must lie in the server's root (the volume's mount point), symlinks resolved. What
 * lies under them is the archive code's business (archiveWrite.ts, archiveRead.ts).
 */

export async function lstatOrNull(p: string): Promise<Stats | null> {
  try {
    return await fsp.lstat(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

export const isInside = (base: string, real: string): boolean => real === base || real.startsWith(base === '/' ? '/' : `${base}/`);

function absolute(param: string, value: string | null): string {
  if (value === null || value === '') throw badRequest('INVALID_PATH', `The query parameter "${param}" is required.`);
  if (!value.startsWith('/') || value.includes('\0')) throw badRequest('INVALID_PATH', `"${param}" must be an absolute path.`);
  // Without a trailing slash: "/a/b/" names the entry "b", as "/a/b" does.
  const normal = posix.normalize(value);
  return normal.length > 1 ? normal.replace(/\/+$/, '') : normal;
}

async function realpathOrNotFound(p: string, shown: string): Promise<string> {
  try {
    return await fsp.realpath(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') throw new ServerRefusal(404, 'NOT_FOUND', `${shown} does not exist.`);
    throw err;
  }
}

/** The root as it is on disk; it must be a folder. */
export async function realRootOf(root: string): Promise<string> {
  const real = await realpathOrNotFound(root, 'The file root');
  if (!(await fsp.stat(real)).isDirectory()) throw new ServerRefusal(500, 'ROOT_UNAVAILABLE', 'The file root is not a folder.');
  return real;
}

/** The existing folder `dir` (symlinks followed), inside the root. */
export async function resolveDir(root: string, dir: string | null): Promise<string> {
  const path = absolute('dir', dir);
  const base = await realRootOf(root);
  const real = await realpathOrNotFound(path, `The folder ${path}`);
  if (!isInside(base, real)) throw badRequest('PATH_OUTSIDE_ROOT', `The folder ${path} is outside the file root.`);
  if (!(await fsp.stat(real)).isDirectory()) throw badRequest('NOT_A_DIRECTORY', `${path} is not a folder.`);
  return real;
}

/**
 * The entry `path` names, NOT followed if it is a symlink: its parent resolved (inside the
 * root), and its own name. The root itself may be read whole.
 */
export async function resolveEntry(root: string, pathParam: string | null): Promise<{ real: string; name: string; stats: Stats }> {
  const path = absolute('path', pathParam);
  const base = await realRootOf(root);
  let real: string;
  if (path === absolute('root', root) || path === base) real = base;
  else {
    const name = posix.basename(path);
    const parent = await realpathOrNotFound(posix.dirname(path), path);
    if (!isInside(base, parent)) throw badRequest('PATH_OUTSIDE_ROOT', `${path} is outside the file root.`);
    real = parent === '/' ? `/${name}` : `${parent}/${name}`;
  }
  const stats = await lstatOrNull(real);
  if (!stats) throw new ServerRefusal(404, 'NOT_FOUND', `${path} does not exist.`);
  return { real, name: posix.basename(path) || posix.basename(base), stats };
}
