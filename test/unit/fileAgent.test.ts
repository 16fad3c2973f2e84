import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MAX_SCRIPT_BYTES } from '../../src/files/agent/build';
import { runFileAgent } from '../../src/files/agent/operations';
import { failureOf, Refusal } from '../../src/files/agent/refusal';
import type { AgentConflict, AgentEntry, AgentRequest, AgentResponse } from '../../src/files/agent/protocol';
import { fileAgentScript } from '../../src/files/agentScript';

/**
 * The in-container file agent, run in-process against a real temporary folder laid out the way a
 * runtime's volume is: `<tmp>/volume/workspace` is the file root, staged uploads wait in
 * `<tmp>/volume/.clawloops-staging/<id>`, and `<tmp>/outside` stands for anything beyond the root.
 */
describe('file agent', () => {
  let tmp: string;
  let root: string;
  let outside: string;
  let stagingCount = 0;

  const run = (request: AgentRequest): AgentResponse => runFileAgent(request);
  const at = (rel: string) => path.join(root, rel);
  const etagOf = (content: string | Buffer) => `"sha256-${crypto.createHash('sha256').update(content).digest('base64url')}"`;

  function resultOf<T>(response: AgentResponse): T {
    if (!response.ok) throw new Error(`expected success, got ${response.code}: ${response.message}`);
    return response.result as T;
  }

  function refusalOf(response: AgentResponse) {
    if (response.ok) throw new Error(`expected a refusal, got ${JSON.stringify(response.result)}`);
    return response;
  }

  /** Creates `files` (relative path → content) under the root, with the folders they need. */
  function write(files: Record<string, string>) {
    for (const [rel, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(at(rel)), { recursive: true });
      fs.writeFileSync(at(rel), content);
    }
  }

  /** A fresh staging folder holding `contents` as "0", "1", ... */
  function stage(contents: string[]): string {
    const staging = path.join(tmp, 'volume', '.clawloops-staging', `upload-${++stagingCount}`);
    fs.mkdirSync(staging, { recursive: true });
    contents.forEach((content, i) => fs.writeFileSync(path.join(staging, String(i)), content));
    return staging;
  }

  /** A fresh staging folder with `files` (relative path → content) under its `tree/`. */
  function stageTree(files: Record<string, string | null>): string {
    const staging = stage([]);
    const tree = path.join(staging, 'tree');
    fs.mkdirSync(tree);
    for (const [rel, content] of Object.entries(files)) {
      // null: an (empty) folder.
      if (content === null) fs.mkdirSync(path.join(tree, rel), { recursive: true });
      else {
        fs.mkdirSync(path.dirname(path.join(tree, rel)), { recursive: true });
        fs.writeFileSync(path.join(tree, rel), content);
      }
    }
    return staging;
  }

  const read = (rel: string) => fs.readFileSync(at(rel), 'utf8');
  const exists = (p: string) => fs.existsSync(p);
  const list = (rel: string) => resultOf<{ entries: AgentEntry[] }>(run({ op: 'list', root, path: rel })).entries;
  const byName = (entries: AgentEntry[]) => Object.fromEntries(entries.map((e) => [e.name, e]));

  beforeEach(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-file-agent-'));
    root = path.join(tmp, 'volume', 'workspace');
    outside = path.join(tmp, 'outside');
    fs.mkdirSync(root, { recursive: true });
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'not yours');
  });

  afterEach(() => {
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  describe('list', () => {
    test('lists files, folders and symlinks with their size and mode', () => {
      write({ 'notes.md': 'hello', 'docs/a.txt': 'x' });
      fs.chmodSync(at('notes.md'), 0o640);
      fs.chmodSync(at('docs'), 0o755);
      fs.symlinkSync('notes.md', at('link-to-notes'));
      const entries = byName(list(''));
      expect(Object.keys(entries).sort()).toEqual(['docs', 'link-to-notes', 'notes.md']);
      expect(entries['notes.md']).toMatchObject({ type: 'file', size: 5, mode: 0o640 });
      expect(entries['notes.md']?.mtimeMs).toBeGreaterThan(0);
      expect(entries.docs).toMatchObject({ type: 'dir', size: 0, mode: 0o755 });
      expect(entries['link-to-notes']).toMatchObject({ type: 'symlink', size: 0 });
    });

    test('says what a symlink points to, and its type only when the target is inside the root', () => {
      write({ 'docs/a.txt': 'x', 'b.txt': 'y' });
      fs.symlinkSync('docs', at('to-dir'));
      fs.symlinkSync('b.txt', at('to-file'));
      fs.symlinkSync('/etc', at('to-etc'));
      fs.symlinkSync(path.join(outside, 'secret.txt'), at('to-secret'));
      fs.symlinkSync('missing', at('broken'));
      const entries = byName(list(''));
      expect(entries['to-dir']).toMatchObject({ type: 'symlink', target: 'docs', targetType: 'dir' });
      expect(entries['to-file']).toMatchObject({ type: 'symlink', target: 'b.txt', targetType: 'file' });
      expect(entries['to-etc']).toMatchObject({ type: 'symlink', target: '/etc', targetType: null });
      expect(entries['to-secret']).toMatchObject({ type: 'symlink', target: path.join(outside, 'secret.txt'), targetType: null });
      expect(entries.broken).toMatchObject({ type: 'symlink', target: 'missing', targetType: null });
      expect(entries['b.txt']).not.toHaveProperty('target');
    });

    test('lists a subfolder', () => {
      write({ 'docs/a.txt': 'x', 'docs/deeper/b.txt': 'yy' });
      expect(list('docs').map((e) => e.name).sort()).toEqual(['a.txt', 'deeper']);
    });

    test('lists a workspace that has no root folder yet as empty, without creating it', () => {
      fs.rmSync(root, { recursive: true });
      expect(list('')).toEqual([]);
      expect(exists(root)).toBe(false);
      expect(refusalOf(run({ op: 'list', root, path: 'docs' })).code).toBe('NOT_FOUND');
    });

    test('refuses to list a file as a folder', () => {
      write({ 'notes.md': 'hello' });
      expect(refusalOf(run({ op: 'list', root, path: 'notes.md' })).code).toBe('NOT_A_DIRECTORY');
    });

    test('refuses to list a folder outside the root reached through a symlink', () => {
      fs.symlinkSync('/etc', at('etc-link'));
      fs.symlinkSync(outside, at('outside-link'));
      expect(refusalOf(run({ op: 'list', root, path: 'etc-link' })).code).toBe('PATH_OUTSIDE_ROOT');
      expect(refusalOf(run({ op: 'list', root, path: 'outside-link' })).code).toBe('PATH_OUTSIDE_ROOT');
    });

    test('lists a folder inside the root reached through a symlink', () => {
      write({ 'docs/a.txt': 'x' });
      fs.symlinkSync('docs', at('docs-link'));
      expect(list('docs-link').map((e) => e.name)).toEqual(['a.txt']);
    });

    test('says a missing folder is not found', () => {
      expect(refusalOf(run({ op: 'list', root, path: 'nope' })).code).toBe('NOT_FOUND');
      expect(refusalOf(run({ op: 'list', root, path: 'nope/deeper' })).code).toBe('NOT_FOUND');
    });

    test('refuses a root that is not a real folder', () => {
      fs.rmSync(root, { recursive: true });
      fs.symlinkSync(outside, root);
      expect(refusalOf(run({ op: 'list', root, path: '' })).code).toBe('ROOT_UNAVAILABLE');
    });
  });

  describe('stat', () => {
    test('describes a file, also when reached through a symlink inside the root', () => {
      write({ 'docs/a.txt': 'four' });
      fs.symlinkSync('docs', at('docs-link'));
      const direct = resultOf<{ type: string; size: number; realPath: string }>(run({ op: 'stat', root, path: 'docs/a.txt' }));
      expect(direct).toMatchObject({ type: 'file', size: 4 });
      const linked = resultOf<{ type: string; size: number; realPath: string }>(run({ op: 'stat', root, path: 'docs-link/a.txt' }));
      expect(linked).toMatchObject({ type: 'file', size: 4, realPath: direct.realPath });
    });

    test('refuses a path that leads outside the root through a symlink', () => {
      fs.symlinkSync(outside, at('outside-link'));
      fs.symlinkSync(path.join(outside, 'secret.txt'), at('secret-link'));
      expect(refusalOf(run({ op: 'stat', root, path: 'outside-link/secret.txt' })).code).toBe('PATH_OUTSIDE_ROOT');
      expect(refusalOf(run({ op: 'stat', root, path: 'secret-link' })).code).toBe('PATH_OUTSIDE_ROOT');
    });

    test('says a missing path is not found', () => {
      expect(refusalOf(run({ op: 'stat', root, path: 'nope.txt' })).code).toBe('NOT_FOUND');
    });
  });

  describe('mkdir', () => {
    test('creates a folder with its missing parents when asked to', () => {
      expect(resultOf(run({ op: 'mkdir', root, path: 'a/b/c', parents: true }))).toEqual({ path: 'a/b/c' });
      expect(fs.statSync(at('a/b/c')).isDirectory()).toBe(true);
    });

    test('creates the root itself when it does not exist yet', () => {
      fs.rmSync(root, { recursive: true });
      resultOf(run({ op: 'mkdir', root, path: 'first', parents: false }));
      expect(fs.statSync(at('first')).isDirectory()).toBe(true);
    });

    test('refuses a missing parent without parents', () => {
      expect(refusalOf(run({ op: 'mkdir', root, path: 'a/b', parents: false })).code).toBe('NOT_FOUND');
      expect(exists(at('a'))).toBe(false);
    });

    test('refuses a name that already exists, folder or file', () => {
      write({ 'docs/a.txt': 'x' });
      expect(refusalOf(run({ op: 'mkdir', root, path: 'docs', parents: false })).code).toBe('ALREADY_EXISTS');
      expect(refusalOf(run({ op: 'mkdir', root, path: 'docs/a.txt', parents: true })).code).toBe('ALREADY_EXISTS');
    });

    test('refuses to create a folder under a file', () => {
      write({ 'a.txt': 'x' });
      expect(refusalOf(run({ op: 'mkdir', root, path: 'a.txt/b/c', parents: true })).code).toBe('NOT_A_DIRECTORY');
      expect(refusalOf(run({ op: 'mkdir', root, path: 'a.txt/b', parents: false })).code).toBe('NOT_A_DIRECTORY');
    });

    test('creates nothing outside the root through a symlinked parent', () => {
      fs.symlinkSync(outside, at('outside-link'));
      expect(refusalOf(run({ op: 'mkdir', root, path: 'outside-link/new', parents: false })).code).toBe('PATH_OUTSIDE_ROOT');
      expect(refusalOf(run({ op: 'mkdir', root, path: 'outside-link/new', parents: true })).code).toBe('PATH_OUTSIDE_ROOT');
      expect(refusalOf(run({ op: 'mkdir', root, path: 'outside-link/deep/new', parents: true })).code).toBe('PATH_OUTSIDE_ROOT');
      expect(fs.readdirSync(outside)).toEqual(['secret.txt']);
    });

    test('follows a symlinked parent that stays inside the root', () => {
      write({ 'docs/a.txt': 'x' });
      fs.symlinkSync('docs', at('docs-link'));
      resultOf(run({ op: 'mkdir', root, path: 'docs-link/sub/new', parents: true }));
      expect(fs.statSync(at('docs/sub/new')).isDirectory()).toBe(true);
    });

    test('refuses to create the root itself', () => {
      expect(refusalOf(run({ op: 'mkdir', root, path: '', parents: true })).code).toBe('INVALID_PATH');
    });
  });

  describe('move', () => {
    test('renames a file', () => {
      write({ 'a.txt': 'content' });
      expect(resultOf(run({ op: 'move', root, from: 'a.txt', to: 'b.txt', overwrite: false }))).toEqual({ from: 'a.txt', to: 'b.txt' });
      expect(exists(at('a.txt'))).toBe(false);
      expect(read('b.txt')).toBe('content');
    });

    test('moves a folder with its contents into another folder', () => {
      write({ 'src/x/y.txt': 'deep', 'dest/keep.txt': 'k' });
      resultOf(run({ op: 'move', root, from: 'src', to: 'dest/src', overwrite: false }));
      expect(read('dest/src/x/y.txt')).toBe('deep');
      expect(exists(at('src'))).toBe(false);
    });

    test('refuses to overwrite an existing file unless asked to', () => {
      write({ 'a.txt': 'new', 'b.txt': 'old' });
      expect(refusalOf(run({ op: 'move', root, from: 'a.txt', to: 'b.txt', overwrite: false })).code).toBe('ALREADY_EXISTS');
      expect(read('a.txt')).toBe('new');
      expect(read('b.txt')).toBe('old');
      resultOf(run({ op: 'move', root, from: 'a.txt', to: 'b.txt', overwrite: true }));
      expect(exists(at('a.txt'))).toBe(false);
      expect(read('b.txt')).toBe('new');
    });

    test('never replaces a folder, even when asked to overwrite', () => {
      write({ 'a.txt': 'x', 'dir/keep.txt': 'k' });
      expect(refusalOf(run({ op: 'move', root, from: 'a.txt', to: 'dir', overwrite: true })).code).toBe('CONFLICT');
      expect(read('dir/keep.txt')).toBe('k');
    });

    test('refuses to move a folder into itself', () => {
      write({ 'a/b/c.txt': 'x' });
      expect(refusalOf(run({ op: 'move', root, from: 'a', to: 'a/inner', overwrite: false })).code).toBe('INVALID_MOVE');
      expect(refusalOf(run({ op: 'move', root, from: 'a', to: 'a/b/inner', overwrite: false })).code).toBe('INVALID_MOVE');
      fs.symlinkSync('a', at('a-link'));
      expect(refusalOf(run({ op: 'move', root, from: 'a', to: 'a-link/inner', overwrite: false })).code).toBe('INVALID_MOVE');
      expect(read('a/b/c.txt')).toBe('x');
    });

    test('treats moving a name onto itself as done', () => {
      write({ 'a.txt': 'x' });
      expect(run({ op: 'move', root, from: 'a.txt', to: 'a.txt', overwrite: false })).toEqual({ ok: true, result: { from: 'a.txt', to: 'a.txt' } });
      expect(read('a.txt')).toBe('x');
    });

    test('refuses a destination whose parent leads outside the root through a symlink', () => {
      write({ 'a.txt': 'mine' });
      fs.symlinkSync(outside, at('outside-link'));
      expect(refusalOf(run({ op: 'move', root, from: 'a.txt', to: 'outside-link/a.txt', overwrite: false })).code).toBe('PATH_OUTSIDE_ROOT');
      expect(read('a.txt')).toBe('mine');
      expect(fs.readdirSync(outside)).toEqual(['secret.txt']);
    });

    test('refuses a source that lies outside the root through a symlink', () => {
      fs.symlinkSync(outside, at('outside-link'));
      expect(refusalOf(run({ op: 'move', root, from: 'outside-link/secret.txt', to: 'stolen.txt', overwrite: false })).code).toBe('PATH_OUTSIDE_ROOT');
      expect(exists(path.join(outside, 'secret.txt'))).toBe(true);
      expect(exists(at('stolen.txt'))).toBe(false);
    });

    test('moves a symlink itself, not what it points to', () => {
      fs.symlinkSync(outside, at('outside-link'));
      resultOf(run({ op: 'move', root, from: 'outside-link', to: 'renamed-link', overwrite: false }));
      expect(fs.readlinkSync(at('renamed-link'))).toBe(outside);
      expect(fs.readdirSync(outside)).toEqual(['secret.txt']);
    });

    test('says a missing source is not found', () => {
      expect(refusalOf(run({ op: 'move', root, from: 'nope.txt', to: 'b.txt', overwrite: false })).code).toBe('NOT_FOUND');
    });
  });

  describe('remove', () => {
    test('removes a file and says how much it freed', () => {
      write({ 'a.txt': '12345' });
      expect(resultOf(run({ op: 'remove', root, path: 'a.txt', recursive: false }))).toEqual({ bytes: 5, files: 1, dirs: 0 });
      expect(exists(at('a.txt'))).toBe(false);
    });

    test('removes a folder only when asked to remove recursively', () => {
      write({ 'dir/a.txt': '123', 'dir/sub/b.txt': '4567' });
      expect(refusalOf(run({ op: 'remove', root, path: 'dir', recursive: false })).code).toBe('RECURSIVE_REQUIRED');
      expect(exists(at('dir/a.txt'))).toBe(true);
      // The folder itself and "sub" are the two folders.
      expect(resultOf(run({ op: 'remove', root, path: 'dir', recursive: true }))).toEqual({ bytes: 7, files: 2, dirs: 2 });
      expect(exists(at('dir'))).toBe(false);
    });

    test('removes only the link when a symlink points outside the root', () => {
      fs.symlinkSync(outside, at('outside-link'));
      resultOf(run({ op: 'remove', root, path: 'outside-link', recursive: true }));
      expect(exists(at('outside-link'))).toBe(false);
      expect(fs.readdirSync(outside)).toEqual(['secret.txt']);
    });

    test('refuses to remove something outside the root through a symlinked folder', () => {
      fs.symlinkSync(outside, at('outside-link'));
      expect(refusalOf(run({ op: 'remove', root, path: 'outside-link/secret.txt', recursive: false })).code).toBe('PATH_OUTSIDE_ROOT');
      expect(exists(path.join(outside, 'secret.txt'))).toBe(true);
    });

    test('refuses to remove the root itself', () => {
      expect(refusalOf(run({ op: 'remove', root, path: '', recursive: true })).code).toBe('INVALID_PATH');
      expect(exists(root)).toBe(true);
    });

    test('says a missing path is not found', () => {
      expect(refusalOf(run({ op: 'remove', root, path: 'nope.txt', recursive: false })).code).toBe('NOT_FOUND');
    });
  });

  describe('usage', () => {
    test('sums the sizes of all files, counting folders below the root', () => {
      write({ 'a.txt': '12345', 'dir/b.txt': '123', 'dir/sub/c.txt': '1234567890' });
      fs.symlinkSync(path.join(outside, 'secret.txt'), at('link'));
      expect(resultOf(run({ op: 'usage', root }))).toEqual({ bytes: 18, files: 4, dirs: 2 });
    });

    test('is zero for a workspace without a root folder', () => {
      fs.rmSync(root, { recursive: true });
      expect(resultOf(run({ op: 'usage', root }))).toEqual({ bytes: 0, files: 0, dirs: 0 });
    });
  });

  describe('conflicts', () => {
    test('names what would stop an upload without changing anything', () => {
      write({ 'up/a.txt': 'x', 'up/dir/keep.txt': 'k', 'up/file': 'f' });
      const response = run({ op: 'conflicts', root, dir: 'up', paths: ['a.txt', 'dir', 'file/inner.txt', 'new.txt'], overwrite: false });
      expect(resultOf<{ conflicts: AgentConflict[] }>(response).conflicts).toEqual([
        { path: 'up/a.txt', reason: 'exists' },
        { path: 'up/dir', reason: 'is-directory' },
        { path: 'up/file/inner.txt', reason: 'blocked-by-file' },
      ]);
      const withOverwrite = run({ op: 'conflicts', root, dir: 'up', paths: ['a.txt'], overwrite: true });
      expect(resultOf<{ conflicts: AgentConflict[] }>(withOverwrite).conflicts).toEqual([]);
    });
  });

  describe('commit', () => {
    test('puts staged files at their paths, creating the folders they need, and removes the staging folder', () => {
      const staging = stage(['first', 'second!']);
      const response = run({ op: 'commit', root, staging, dir: 'uploads', overwrite: false, files: [
        { name: '0', path: 'a.txt' },
        { name: '1', path: 'deep/er/b.txt' },
      ] });
      expect(resultOf(response)).toEqual({ written: [{ path: 'uploads/a.txt', size: 5 }, { path: 'uploads/deep/er/b.txt', size: 7 }] });
      expect(read('uploads/a.txt')).toBe('first');
      expect(read('uploads/deep/er/b.txt')).toBe('second!');
      expect(exists(staging)).toBe(false);
    });

    test('clears staging folders a crash or a stop left behind more than a day ago, and only those', () => {
      const old = stage(['left over']);
      const recent = stage(['in flight']);
      const twoDaysAgo = new Date(Date.now() - 48 * 3600_000);
      fs.utimesSync(old, twoDaysAgo, twoDaysAgo);
      resultOf(run({ op: 'commit', root, staging: stage(['x']), dir: '', overwrite: false, files: [{ name: '0', path: 'x.txt' }] }));
      expect(exists(old)).toBe(false);
      expect(exists(recent)).toBe(true);
    });

    test('puts files at the root when no folder is named', () => {
      const staging = stage(['top']);
      resultOf(run({ op: 'commit', root, staging, dir: '', overwrite: false, files: [{ name: '0', path: 'top.txt' }] }));
      expect(read('top.txt')).toBe('top');
    });

    test('refuses taken names without overwrite, lists them, places nothing and still removes the staging folder', () => {
      write({ 'up/taken.txt': 'old', 'up/dir/keep.txt': 'k' });
      const staging = stage(['fresh', 'new', 'also new']);
      const response = refusalOf(run({ op: 'commit', root, staging, dir: 'up', overwrite: false, files: [
        { name: '0', path: 'free.txt' },
        { name: '1', path: 'taken.txt' },
        { name: '2', path: 'dir' },
      ] }));
      expect(response.code).toBe('CONFLICT');
      expect(response.conflicts).toEqual([
        { path: 'up/taken.txt', reason: 'exists' },
        { path: 'up/dir', reason: 'is-directory' },
      ]);
      expect(exists(at('up/free.txt'))).toBe(false);
      expect(read('up/taken.txt')).toBe('old');
      expect(read('up/dir/keep.txt')).toBe('k');
      expect(exists(staging)).toBe(false);
    });

    test('replaces an existing file when asked to overwrite, keeping its mode', () => {
      write({ 'private.txt': 'old secret' });
      fs.chmodSync(at('private.txt'), 0o600);
      const staging = stage(['new secret']);
      fs.chmodSync(path.join(staging, '0'), 0o644);
      resultOf(run({ op: 'commit', root, staging, dir: '', overwrite: true, files: [{ name: '0', path: 'private.txt' }] }));
      expect(read('private.txt')).toBe('new secret');
      expect(fs.statSync(at('private.txt')).mode & 0o7777).toBe(0o600);
      expect(exists(staging)).toBe(false);
    });

    test('reports a file standing where a folder is needed as blocked-by-file', () => {
      write({ 'reports': 'I am a file' });
      const staging = stage(['q1']);
      const response = refusalOf(run({ op: 'commit', root, staging, dir: '', overwrite: true, files: [{ name: '0', path: 'reports/q1.txt' }] }));
      expect(response.code).toBe('CONFLICT');
      expect(response.conflicts).toEqual([{ path: 'reports/q1.txt', reason: 'blocked-by-file' }]);
      expect(read('reports')).toBe('I am a file');
      expect(exists(staging)).toBe(false);
    });

    test('refuses a target folder outside the root through a symlink, creating nothing there', () => {
      fs.symlinkSync(outside, at('outside-link'));
      const staging = stage(['payload']);
      const response = refusalOf(run({ op: 'commit', root, staging, dir: 'outside-link/new', overwrite: false, files: [{ name: '0', path: 'x.txt' }] }));
      expect(response.code).toBe('PATH_OUTSIDE_ROOT');
      expect(fs.readdirSync(outside)).toEqual(['secret.txt']);
      expect(exists(staging)).toBe(false);
    });

    // Known bug, left unfixed here: conflicts are only looked for among existing names, so "a" is placed as
    // a file, then "a/b.txt" fails with NOT_A_DIRECTORY and the commit is left half done. Drop `.failing`
    // once the commit checks its own files against each other.
    test('places nothing when one file of the upload would need another one to be a folder', () => {
      const staging = stage(['file a', 'file a/b']);
      const response = run({ op: 'commit', root, staging, dir: '', overwrite: false, files: [
        { name: '0', path: 'a' },
        { name: '1', path: 'a/b.txt' },
      ] });
      expect(response.ok).toBe(false);
      expect(exists(at('a'))).toBe(false);
    });
  });

  describe('commitTree', () => {
    test('merges a staged tree into an existing folder and removes the staging folder', () => {
      write({ 'proj/keep.txt': 'kept', 'proj/src/old.ts': 'old' });
      const staging = stageTree({ 'README.md': 'readme', 'src/new.ts': 'new', 'src/util/x.ts': 'x', 'empty': null });
      const response = run({ op: 'commitTree', root, staging, dir: 'proj', overwrite: false });
      expect(resultOf(response)).toEqual({ files: 3, dirs: 3, bytes: 6 + 3 + 1 });
      expect(read('proj/keep.txt')).toBe('kept');
      expect(read('proj/src/old.ts')).toBe('old');
      expect(read('proj/src/new.ts')).toBe('new');
      expect(read('proj/src/util/x.ts')).toBe('x');
      expect(read('proj/README.md')).toBe('readme');
      expect(fs.statSync(at('proj/empty')).isDirectory()).toBe(true);
      expect(exists(staging)).toBe(false);
    });

    test('creates the target folder when it does not exist yet', () => {
      const staging = stageTree({ 'a/b.txt': 'b' });
      resultOf(run({ op: 'commitTree', root, staging, dir: 'imports/new', overwrite: false }));
      expect(read('imports/new/a/b.txt')).toBe('b');
    });

    test('reports taken names, places nothing and removes the staging folder', () => {
      write({ 'proj/src/old.ts': 'old', 'proj/blocker': 'file' });
      const staging = stageTree({ 'fresh.txt': 'fresh', 'src/old.ts': 'replacement', 'blocker/inner.txt': 'i' });
      const response = refusalOf(run({ op: 'commitTree', root, staging, dir: 'proj', overwrite: false }));
      expect(response.code).toBe('CONFLICT');
      expect(response.conflicts).toEqual(expect.arrayContaining([
        { path: 'proj/src/old.ts', reason: 'exists' },
        { path: 'proj/blocker/inner.txt', reason: 'blocked-by-file' },
      ]));
      expect(exists(at('proj/fresh.txt'))).toBe(false);
      expect(read('proj/src/old.ts')).toBe('old');
      expect(exists(staging)).toBe(false);
    });

    test('replaces existing files when asked to overwrite', () => {
      write({ 'proj/src/old.ts': 'old' });
      const staging = stageTree({ 'src/old.ts': 'replacement' });
      resultOf(run({ op: 'commitTree', root, staging, dir: 'proj', overwrite: true }));
      expect(read('proj/src/old.ts')).toBe('replacement');
    });

    // Known bug, left unfixed here: staged folders are checked with overwrite=true, so an existing file at a
    // staged folder's name is never reported; the commit then fails half done (a.txt placed) with
    // NOT_A_DIRECTORY. Drop `.failing` once folders report 'blocked-by-file' for a file in their place.
    test('reports a file standing where an empty staged folder goes as blocked-by-file, placing nothing', () => {
      write({ 'proj/cache': 'a file' });
      const staging = stageTree({ 'a.txt': 'a', 'cache': null });
      const response = run({ op: 'commitTree', root, staging, dir: 'proj', overwrite: false });
      expect(response).toMatchObject({ ok: false, code: 'CONFLICT', conflicts: [{ path: 'proj/cache', reason: 'blocked-by-file' }] });
      expect(exists(at('proj/a.txt'))).toBe(false);
      expect(exists(staging)).toBe(false);
    });
  });

  describe('replaceText', () => {
    function stageText(content: string) {
      const staging = stage([content]);
      return { staging, name: '0' };
    }

    test('replaces a file that still has the ETag the editor loaded, and returns the new ETag', () => {
      write({ 'notes.md': 'version 1' });
      fs.chmodSync(at('notes.md'), 0o600);
      const { staging, name } = stageText('version 2');
      const response = run({ op: 'replaceText', root, staging, name, path: 'notes.md', ifMatch: etagOf('version 1'), ifNoneMatch: false });
      expect(resultOf(response)).toEqual({ etag: etagOf('version 2'), size: 9 });
      expect(read('notes.md')).toBe('version 2');
      expect(fs.statSync(at('notes.md')).mode & 0o7777).toBe(0o600);
      expect(exists(staging)).toBe(false);
    });

    test('refuses a stale ETag, says the current one and leaves the file alone', () => {
      write({ 'notes.md': 'changed meanwhile' });
      const { staging, name } = stageText('my edit');
      const response = refusalOf(run({ op: 'replaceText', root, staging, name, path: 'notes.md', ifMatch: etagOf('what I loaded'), ifNoneMatch: false }));
      expect(response.code).toBe('PRECONDITION_FAILED');
      expect(response.etag).toBe(etagOf('changed meanwhile'));
      expect(read('notes.md')).toBe('changed meanwhile');
      expect(exists(staging)).toBe(false);
    });

    test('refuses to create a file that exists already (If-None-Match)', () => {
      write({ 'notes.md': 'there' });
      const { staging, name } = stageText('new');
      const response = refusalOf(run({ op: 'replaceText', root, staging, name, path: 'notes.md', ifMatch: null, ifNoneMatch: true }));
      expect(response.code).toBe('PRECONDITION_FAILED');
      expect(response.etag).toBe(etagOf('there'));
      expect(read('notes.md')).toBe('there');
    });

    test('creates a new file with If-None-Match', () => {
      write({ 'docs/keep.txt': 'k' });
      const { staging, name } = stageText('brand new');
      const response = run({ op: 'replaceText', root, staging, name, path: 'docs/new.md', ifMatch: null, ifNoneMatch: true });
      expect(resultOf(response)).toEqual({ etag: etagOf('brand new'), size: 9 });
      expect(read('docs/new.md')).toBe('brand new');
      expect(exists(staging)).toBe(false);
    });

    test('refuses to save a file deleted since it was opened', () => {
      const { staging, name } = stageText('my edit');
      const response = refusalOf(run({ op: 'replaceText', root, staging, name, path: 'gone.md', ifMatch: etagOf('what I loaded'), ifNoneMatch: false }));
      expect(response.code).toBe('PRECONDITION_FAILED');
      expect(exists(at('gone.md'))).toBe(false);
      expect(exists(staging)).toBe(false);
    });

    test('writes through a symlink inside the root to the file it names', () => {
      write({ 'real.md': 'v1' });
      fs.symlinkSync('real.md', at('alias.md'));
      const { staging, name } = stageText('v2');
      resultOf(run({ op: 'replaceText', root, staging, name, path: 'alias.md', ifMatch: etagOf('v1'), ifNoneMatch: false }));
      expect(read('real.md')).toBe('v2');
      expect(fs.lstatSync(at('alias.md')).isSymbolicLink()).toBe(true);
    });

    test('refuses to write through a symlink leading outside the root', () => {
      fs.symlinkSync(path.join(outside, 'secret.txt'), at('secret-link'));
      const { staging, name } = stageText('overwritten');
      const response = refusalOf(run({ op: 'replaceText', root, staging, name, path: 'secret-link', ifMatch: '*', ifNoneMatch: false }));
      expect(response.code).toBe('PATH_OUTSIDE_ROOT');
      expect(fs.readFileSync(path.join(outside, 'secret.txt'), 'utf8')).toBe('not yours');
    });
  });

  test('discard removes a staging folder and is fine when it is gone already', () => {
    const staging = stage(['x']);
    expect(resultOf(run({ op: 'discard', staging }))).toEqual({});
    expect(exists(staging)).toBe(false);
    expect(resultOf(run({ op: 'discard', staging }))).toEqual({});
  });

  describe('the shipped script', () => {
    let script: string;
    beforeAll(async () => {
      script = await fileAgentScript();
    });

    test('runs on its own in a separate node process', () => {
      write({ 'hello.txt': 'hi', 'dir/x': 'x' });
      const request: AgentRequest = { op: 'list', root, path: '' };
      const child = spawnSync(process.execPath, ['-e', script], { input: JSON.stringify(request), encoding: 'utf8' });
      expect(child.stderr).toBe('');
      expect(child.status).toBe(0);
      const response = JSON.parse(child.stdout) as AgentResponse;
      expect(response.ok).toBe(true);
      const entries = (response as { ok: true; result: { entries: AgentEntry[] } }).result.entries;
      expect(entries.map((e) => [e.name, e.type]).sort()).toEqual([['dir', 'dir'], ['hello.txt', 'file']]);
    });

    test('answers a refusal as a response, exit code 0', () => {
      const request: AgentRequest = { op: 'stat', root, path: 'missing.txt' };
      const child = spawnSync(process.execPath, ['-e', script], { input: JSON.stringify(request), encoding: 'utf8' });
      expect(child.status).toBe(0);
      expect(JSON.parse(child.stdout)).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    });

    test('is self-contained: it requires nothing but Node built-ins, and fits in one command-line argument', () => {
      const required = [...script.matchAll(/require\((["'])([^"']+)\1\)/g)].map((m) => m[2]);
      expect(required.length).toBeGreaterThan(0);
      for (const name of required) expect([name, name?.startsWith('node:') || ['fs', 'path', 'crypto'].includes(name ?? '')]).toEqual([name, true]);
      expect(Buffer.byteLength(script)).toBeLessThan(MAX_SCRIPT_BYTES);
    });

    test('is bundled once and then served from memory', async () => {
      expect(await fileAgentScript()).toBe(script);
    });
  });
});

describe('file agent failures', () => {
  test.each([
    ['ENOSPC', 'NO_SPACE'],
    ['EDQUOT', 'NO_SPACE'],
    ['EACCES', 'PERMISSION_DENIED'],
    ['ENAMETOOLONG', 'NAME_TOO_LONG'],
    ['ENOTEMPTY', 'CONFLICT'],
  ])('a file system error %s is answered %s, with no container path in the message', (code, answer) => {
    const failure = failureOf(Object.assign(new Error(`${code}: /home/node/.openclaw/workspace/secret`), { code }));
    expect(failure).toMatchObject({ ok: false, code: answer });
    expect(failure.message).not.toContain('/home/node');
  });

  test('a refusal keeps its code and its conflicts; anything else is AGENT_FAILED', () => {
    const conflicts = [{ path: 'a', reason: 'exists' as const }];
    expect(failureOf(new Refusal('CONFLICT', 'taken', { conflicts }))).toEqual({ ok: false, code: 'CONFLICT', message: 'taken', conflicts });
    expect(failureOf(new TypeError('boom'))).toMatchObject({ ok: false, code: 'AGENT_FAILED' });
  });
});
