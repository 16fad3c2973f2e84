import * as fs from 'node:fs';
import { lstatOrNull } from './paths';
import { RESTORE_DIR } from './protocol';
import { Refusal } from './refusal';

/**
 * Replacing a whole volume's content with a restored tree, so that a crash at any moment leaves
 * either the previous content or the restored one, never a mix that a runtime would start on.
 *
 * The restored tree is first unpacked into `<volume>/.clawloops-restore/<id>/` (by the control
 * plane, through the archive API). The swap then moves names only (renames within one file
 * system): every entry of the volume's root into `<id>.previous/`, then every entry of `<id>/`
 * into the root. A journal next to them says which of the two steps is under way, and running
 * the swap again continues from there: each step moves whatever is still on its source side, so
 * it is safe to repeat after a crash at any point. The file manager's staging folder stays where
 * it is (it belongs to neither content). A step that fails on its own (a folder that refuses to
 * be moved) is undone before the failure is reported, so the previous content is back in place.
 */

/** The file manager's staging folder (files/staging.ts): neither the old content nor the new. */
const KEEP_IN_ROOT = new Set([RESTORE_DIR, '.clawloops-staging']);
const ID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

type Phase = 'stash' | 'install' | 'done';

function paths(volumeRoot: string, id: string) {
  if (!ID_PATTERN.test(id) || !volumeRoot.startsWith('/')) throw new Refusal('INVALID_PATH', 'Not a restore of this volume.');
  const base = `${volumeRoot}/${RESTORE_DIR}`;
  return { base, staged: `${base}/${id}`, previous: `${base}/${id}.previous`, journal: `${base}/${id}.journal` };
}

function readPhase(journal: string): Phase | null {
  try {
    const phase = (JSON.parse(fs.readFileSync(journal, 'utf8')) as { phase?: unknown }).phase;
    return phase === 'stash' || phase === 'install' || phase === 'done' ? phase : null;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** Written whole or not at all: the journal is what a resumed swap trusts. */
function writePhase(journal: string, phase: Phase): void {
  const temporary = `${journal}.tmp`;
  const fd = fs.openSync(temporary, 'w', 0o600);
  try {
    fs.writeSync(fd, JSON.stringify({ phase }));
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  fs.renameSync(temporary, journal);
}

/** Moving a folder to another parent rewrites its `..`, which needs write permission on the folder itself. */
function movable(entry: string): void {
  const st = lstatOrNull(entry);
  if (st?.isDirectory() && (st.mode & 0o200) === 0) fs.chmodSync(entry, (st.mode & 0o7777) | 0o700);
}

/** Moves every entry of `from` into `to`, except `skip`; `ifFree`: leaves an entry whose name is taken in `to` where it is. */
function moveChildren(from: string, to: string, skip: Set<string>, ifFree = false): void {
  for (const name of fs.readdirSync(from)) {
    if (skip.has(name) || (ifFree && lstatOrNull(`${to}/${name}`))) continue;
    movable(`${from}/${name}`);
    fs.renameSync(`${from}/${name}`, `${to}/${name}`);
  }
}

const NOTHING = new Set<string>();

/** Swaps the restored tree `id` into the volume's root, or finishes a swap a crash interrupted. */
export function swapVolume(volumeRoot: string, id: string): { phase: 'done' } {
  const { staged, previous, journal } = paths(volumeRoot, id);
  let phase = readPhase(journal);
  if (phase === null) {
    if (!lstatOrNull(staged)?.isDirectory()) throw new Refusal('NOT_FOUND', 'The restored files are not in the volume.');
    // Made again after a crash right here: the journal is written only after it.
    fs.mkdirSync(previous, { recursive: true, mode: 0o700 });
    writePhase(journal, 'stash');
    phase = 'stash';
  }
  if (phase === 'stash') {
    try {
      moveChildren(volumeRoot, previous, KEEP_IN_ROOT);
    } catch (err) {
      moveChildren(previous, volumeRoot, NOTHING, true);
      fs.rmSync(journal, { force: true });
      throw err;
    }
    writePhase(journal, 'install');
    phase = 'install';
  }
  if (phase === 'install') {
    try {
      moveChildren(staged, volumeRoot, NOTHING);
    } catch (err) {
      // What the restore put in the root goes back; a name the restored tree still holds was not
      // put there by it (it appeared meanwhile) and stays.
      moveChildren(volumeRoot, staged, KEEP_IN_ROOT, true);
      moveChildren(previous, volumeRoot, NOTHING, true);
      fs.rmSync(journal, { force: true });
      throw err;
    }
    writePhase(journal, 'done');
  }
  return { phase: 'done' };
}

/**
 * Removes everything restores left in the volume: the previous content of a finished swap, the
 * unpacked tree of a failed or abandoned one. Never while a swap is under way (its journal says
 * stash or install): that one must be finished first, or its previous content would be lost.
 */
export function clearRestores(volumeRoot: string): { removed: number } {
  const base = `${volumeRoot}/${RESTORE_DIR}`;
  let names: string[];
  try {
    names = fs.readdirSync(base);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { removed: 0 };
    throw err;
  }
  for (const name of names.filter((n) => n.endsWith('.journal'))) {
    const phase = readPhase(`${base}/${name}`);
    if (phase === 'stash' || phase === 'install') throw new Refusal('CONFLICT', 'A restore of this volume was interrupted mid-swap; it must be finished before anything is removed.');
  }
  removeTree(base);
  return { removed: names.length };
}

/** rm -r for a tree whose folders may deny their owner write access (a restored read-only folder). */
function removeTree(root: string): void {
  const stack = [root];
  while (stack.length > 0) {
    const dir = stack.pop() as string;
    const st = lstatOrNull(dir);
    if (!st?.isDirectory()) continue;
    if ((st.mode & 0o700) !== 0o700) fs.chmodSync(dir, (st.mode & 0o7777) | 0o700);
    for (const name of fs.readdirSync(dir)) stack.push(`${dir}/${name}`);
  }
  fs.rmSync(root, { recursive: true, force: true });
}
