import * as fs from 'node:fs';
import type { Stats } from 'node:fs';
import type { EntryType } from './protocol';

/** A path as the member knows it, for messages: workspace-relative, never the container's. */
export const show = (rel: string): string => (rel === '' ? 'your workspace folder' : `"${rel}"`);

export const segmentsOf = (rel: string): string[] => (rel === '' ? [] : rel.split('/'));

export const joinRel = (a: string, b: string): string => (a === '' ? b : b === '' ? a : `${a}/${b}`);

/** lstat, or null when nothing is there (or a file sits where a folder of the path should be). */
export function lstatOrNull(p: string): Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

export const typeOf = (st: Stats): EntryType => (st.isSymbolicLink() ? 'symlink' : st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other');
