import * as fs from 'node:fs';
import { posix } from 'node:path';
import { discard, etagOf, measure, place } from './placing';
import { joinRel, lstatOrNull, segmentsOf, show, typeOf } from './paths';
import type { AgentConflict, AgentEntry, AgentRequest, AgentResponse } from './protocol';
import { failureOf, Refusal } from './refusal';
import { clearRestores, swapVolume } from './volumeSwap';
import { WorkspaceRoot } from './workspaceRoot';

/**
 * The file agent: the part of the file manager that runs INSIDE a container holding the user's
 * volume, as uid 1000, because only there can a directory be listed in O(entries), a symlink be
 * resolved the way the runtime sees it, or a staged file be renamed into place atomically. The
 * archive streams move the bytes; this moves names. main.ts is its entry; the build bundles it
 * into one script (build.ts) that the workspace-volume port runs with the request on stdin.
 *
 * Every operation is synchronous and answers with a response, never a throw: a refusal or a file
 * system error becomes `{ ok: false, code, message }`.
 */
export function runFileAgent(request: AgentRequest): AgentResponse {
  try {
    return { ok: true, result: operate(request) };
  } catch (err) {
    return failureOf(err);
  }
}

type Op<K extends AgentRequest['op']> = Extract<AgentRequest, { op: K }>;

function operate(request: AgentRequest): unknown {
  if (request.op === 'discard') {
    discard(request.staging);
    return {};
  }
  if (request.op === 'swapVolume') return swapVolume(request.volumeRoot, request.id);
  if (request.op === 'clearRestores') return clearRestores(request.volumeRoot);
  const root = new WorkspaceRoot(request.root);
  switch (request.op) {
    case 'list':
      return list(request, root);
    case 'stat':
      return stat(request, root);
    case 'mkdir':
      return mkdir(request, root);
    case 'move':
      return move(request, root);
    case 'remove':
      return remove(request, root);
    case 'usage':
      return usage(root);
    case 'conflicts':
      return conflicts(request, root);
    case 'commit':
      return withStaging(request.staging, () => commit(request, root));
    case 'commitTree':
      return withStaging(request.staging, () => commitTree(request, root));
    case 'copy':
      return withStaging(request.staging, () => copy(request, root));
    case 'replaceText':
      return withStaging(request.staging, () => replaceText(request, root));
  }
}

/** A staging folder is gone after the operation that consumes it, whatever its outcome. */
function withStaging<T>(staging: string, work: () => T): T {
  try {
    return work();
  } finally {
    discard(staging);
  }
}

function list(request: Op<'list'>, root: WorkspaceRoot): { entries: AgentEntry[] } {
  const base = root.get(false);
  if (base === null && request.path === '') return { entries: [] };
  const dir = root.resolveDir(request.path);
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
        entry.targetType = root.inside(real) ? typeOf(fs.statSync(real)) : null;
      } catch {
        entry.targetType = null;
      }
    }
    entries.push(entry);
  }
  return { entries };
}

function stat(request: Op<'stat'>, root: WorkspaceRoot) {
  const real = root.resolveExisting(request.path);
  const st = fs.statSync(real);
  return { realPath: real, type: typeOf(st), size: st.isFile() ? st.size : 0, mtimeMs: Math.round(st.mtimeMs), mode: st.mode & 0o7777 };
}

function mkdir(request: Op<'mkdir'>, root: WorkspaceRoot) {
  root.require();
  const segments = segmentsOf(request.path);
  const name = segments.pop();
  if (name === undefined) throw new Refusal('INVALID_PATH', 'Name the folder to create.');
  const parent = request.parents ? root.ensureDirs(root.require(), segments, '') : root.resolveDir(segments.join('/'));
  try {
    fs.mkdirSync(`${parent}/${name}`, { mode: 0o755 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new Refusal('ALREADY_EXISTS', `${show(request.path)} already exists.`);
    throw err;
  }
  return { path: request.path };
}

function move(request: Op<'move'>, root: WorkspaceRoot) {
  const from = root.resolveEntry(request.from);
  const source = lstatOrNull(from.target);
  if (!source) throw new Refusal('NOT_FOUND', `${show(request.from)} does not exist.`);
  const to = root.resolveEntry(request.to);
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

function copy(request: Op<'copy'>, root: WorkspaceRoot) {
  const from = root.resolveEntry(request.from);
  const source = lstatOrNull(from.target);
  if (!source) throw new Refusal('NOT_FOUND', `${show(request.from)} does not exist.`);
  const to = root.resolveEntry(request.to);
  if (to.target === from.target) throw new Refusal('INVALID_MOVE', `${show(request.to)} is the source itself.`);
  const deep = source.isDirectory() && !request.shallow;
  if (deep && (to.parent === from.target || to.parent.startsWith(`${from.target}/`))) {
    throw new Refusal('INVALID_MOVE', `A folder cannot be copied into itself (${show(request.to)}).`);
  }
  const existing = lstatOrNull(to.target);
  if (existing && !request.overwrite) throw new Refusal('ALREADY_EXISTS', `${show(request.to)} already exists; ask to overwrite it to replace it.`);
  const totals = deep ? measure(from.target) : { bytes: source.isFile() ? source.size : 0, files: source.isDirectory() ? 0 : 1, dirs: source.isDirectory() ? 1 : 0 };
  if (totals.bytes > request.maxBytes) throw new Refusal('QUOTA_EXCEEDED', `The copy holds ${totals.bytes} bytes; ${request.maxBytes} bytes of your quota are free.`);
  fs.mkdirSync(request.staging, { recursive: true, mode: 0o700 });
  const built = `${request.staging}/copy`;
  if (source.isDirectory()) {
    if (deep) fs.cpSync(from.target, built, { recursive: true, verbatimSymlinks: true, errorOnExist: true });
    else fs.mkdirSync(built, { mode: source.mode & 0o7777 });
  } else if (source.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(from.target), built);
  else if (source.isFile()) fs.copyFileSync(from.target, built, fs.constants.COPYFILE_EXCL);
  else throw new Refusal('NOT_A_FILE', `${show(request.from)} is neither a file nor a folder.`);
  // The replaced entry goes only once the copy is complete beside it.
  if (existing) fs.rmSync(to.target, { recursive: true, force: true });
  fs.renameSync(built, to.target);
  return { ...totals, replaced: existing !== null };
}

function remove(request: Op<'remove'>, root: WorkspaceRoot) {
  const entry = root.resolveEntry(request.path);
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

function usage(root: WorkspaceRoot) {
  const base = root.get(false);
  if (base === null) return { bytes: 0, files: 0, dirs: 0 };
  const totals = measure(base);
  return { ...totals, dirs: totals.dirs - 1 };
}

function conflicts(request: Op<'conflicts'>, root: WorkspaceRoot): { conflicts: AgentConflict[] } {
  const dir = root.existingDirOrNull(request.dir);
  const found: AgentConflict[] = [];
  for (const rel of request.paths) {
    const conflict = root.conflictAt(dir, rel, request.overwrite, joinRel(request.dir, rel));
    if (conflict) found.push(conflict);
  }
  return { conflicts: found };
}

function refuseConflicts(found: AgentConflict[]): void {
  if (found.length > 0) throw new Refusal('CONFLICT', `${found.length} of the names are taken.`, { conflicts: found });
}

function commit(request: Op<'commit'>, root: WorkspaceRoot) {
  root.require();
  const existingDir = root.existingDirOrNull(request.dir);
  const found: AgentConflict[] = [];
  const paths = new Set(request.files.map((file) => file.path));
  for (const file of request.files) {
    const conflict = root.conflictAt(existingDir, file.path, request.overwrite, joinRel(request.dir, file.path));
    if (conflict) found.push(conflict);
    // "a" and "a/b.txt" in one request: "a" cannot be a file and a folder.
    for (let parent = posix.dirname(file.path); parent !== '.'; parent = posix.dirname(parent)) {
      if (paths.has(parent)) found.push({ path: joinRel(request.dir, parent), reason: 'blocked-by-file' });
    }
  }
  refuseConflicts(found);
  const dir = existingDir ?? root.ensureDirs(root.require(), segmentsOf(request.dir), '');
  const written: { path: string; size: number }[] = [];
  for (const file of request.files) {
    const segments = segmentsOf(file.path);
    const name = segments.pop() as string;
    const parent = root.ensureDirs(dir, segments, request.dir);
    const staged = `${request.staging}/${file.name}`;
    const size = fs.lstatSync(staged).size;
    place(staged, `${parent}/${name}`, request.overwrite, joinRel(request.dir, file.path));
    written.push({ path: joinRel(request.dir, file.path), size });
  }
  return { written };
}

/** Everything staged under `tree`, parents before children. */
function stagedTree(tree: string): { rel: string; dir: boolean }[] {
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
  return staged.sort((a, b) => a.rel.split('/').length - b.rel.split('/').length);
}

function commitTree(request: Op<'commitTree'>, root: WorkspaceRoot) {
  root.require();
  const tree = `${request.staging}/tree`;
  const staged = stagedTree(tree);
  const existingDir = root.existingDirOrNull(request.dir);
  const found: AgentConflict[] = [];
  for (const entry of staged) {
    if (entry.dir) {
      // Folders merge into existing folders; anything else at the name (a file, a link) blocks them.
      const conflict = root.conflictAt(existingDir, entry.rel, false, joinRel(request.dir, entry.rel));
      if (conflict && conflict.reason !== 'is-directory') found.push({ ...conflict, reason: 'blocked-by-file' });
    } else {
      const conflict = root.conflictAt(existingDir, entry.rel, request.overwrite, joinRel(request.dir, entry.rel));
      if (conflict) found.push(conflict);
    }
  }
  refuseConflicts(found);
  const dir = existingDir ?? root.ensureDirs(root.require(), segmentsOf(request.dir), '');
  let files = 0;
  let bytes = 0;
  for (const entry of staged) {
    const segments = segmentsOf(entry.rel);
    if (entry.dir) {
      root.ensureDirs(dir, segments, request.dir);
      continue;
    }
    const name = segments.pop() as string;
    const parent = root.ensureDirs(dir, segments, request.dir);
    const from = `${tree}/${entry.rel}`;
    const st = fs.lstatSync(from);
    place(from, `${parent}/${name}`, request.overwrite, joinRel(request.dir, entry.rel));
    files++;
    if (st.isFile()) bytes += st.size;
  }
  return { files, dirs: staged.length - files, bytes };
}

function replaceText(request: Op<'replaceText'>, root: WorkspaceRoot) {
  try {
    const staged = `${request.staging}/${request.name}`;
    const content = fs.readFileSync(staged);
    const entry = root.resolveEntry(request.path);
    const st = lstatOrNull(entry.target);
    if (!st) {
      if (request.ifMatch !== null) throw new Refusal('PRECONDITION_FAILED', `${show(request.path)} was deleted since you opened it.`);
      place(staged, entry.target, false, request.path);
    } else {
      const real = root.resolveExisting(request.path);
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
    if (err instanceof Refusal && err.code === 'CONFLICT') throw new Refusal('PRECONDITION_FAILED', `${show(request.path)} was created meanwhile.`);
    throw err;
  }
}
