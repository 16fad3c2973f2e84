import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runFileAgent } from '../../src/files/agent/operations';
import { RESTORE_DIR } from '../../src/files/agent/protocol';

/**
 * The file agent's whole-volume swap, on a real file system: the restored tree replaces the
 * volume's content, a crash at any step resumes to the same result, and a swap that cannot
 * finish puts the previous content back.
 */

const ID = 'r3st0re-abcdef12';
let volume: string;

beforeEach(() => {
  volume = fs.mkdtempSync(path.join(os.tmpdir(), 'volume-swap-'));
});
afterEach(() => {
  // A test may have left a folder its owner cannot write to.
  for (const dir of walkDirs(volume)) fs.chmodSync(dir, 0o700);
  fs.rmSync(volume, { recursive: true, force: true });
});

function walkDirs(root: string): string[] {
  const out: string[] = [];
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop() as string;
    out.push(dir);
    fs.chmodSync(dir, 0o700);
    for (const d of fs.readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) stack.push(path.join(dir, d.name));
  }
  return out;
}

function write(rel: string, content: string): void {
  fs.mkdirSync(path.dirname(path.join(volume, rel)), { recursive: true });
  fs.writeFileSync(path.join(volume, rel), content);
}

/** Every file under the volume's root as path → content, the restore and staging folders left out. */
function content(): Record<string, string> {
  const out: Record<string, string> = {};
  const stack = [''];
  while (stack.length) {
    const rel = stack.pop() as string;
    for (const d of fs.readdirSync(path.join(volume, rel), { withFileTypes: true })) {
      const child = rel ? `${rel}/${d.name}` : d.name;
      if (child === RESTORE_DIR || child === '.clawloops-staging') continue;
      if (d.isDirectory()) stack.push(child);
      else out[child] = fs.readFileSync(path.join(volume, child), 'utf8');
    }
  }
  return out;
}

function setUp(): void {
  write('openclaw.json', 'old config');
  write('workspace/notes.md', 'old notes');
  write('workspace/only-now.txt', 'made after the backup');
  write('.clawloops-staging/upload-1/part', 'an upload in flight');
  write(`${RESTORE_DIR}/${ID}/openclaw.json`, 'backed-up config');
  write(`${RESTORE_DIR}/${ID}/workspace/notes.md`, 'backed-up notes');
  write(`${RESTORE_DIR}/${ID}/agents/main/sessions/s1.jsonl`, '{"session":1}');
}

const RESTORED = { 'openclaw.json': 'backed-up config', 'workspace/notes.md': 'backed-up notes', 'agents/main/sessions/s1.jsonl': '{"session":1}' };
const PREVIOUS = { 'openclaw.json': 'old config', 'workspace/notes.md': 'old notes', 'workspace/only-now.txt': 'made after the backup' };

const swap = () => runFileAgent({ op: 'swapVolume', volumeRoot: volume, id: ID });
const clear = () => runFileAgent({ op: 'clearRestores', volumeRoot: volume });

describe('swapping a restored tree into a volume', () => {
  it('replaces the content with exactly the restored tree, keeps the staging folder, and clears up after', () => {
    setUp();
    expect(swap()).toEqual({ ok: true, result: { phase: 'done' } });
    expect(content()).toEqual(RESTORED);
    expect(fs.readFileSync(path.join(volume, '.clawloops-staging/upload-1/part'), 'utf8')).toBe('an upload in flight');
    // Until cleared, the previous content is still there to be had.
    expect(fs.readFileSync(path.join(volume, RESTORE_DIR, `${ID}.previous`, 'workspace/only-now.txt'), 'utf8')).toBe('made after the backup');
    expect(clear()).toMatchObject({ ok: true });
    expect(fs.existsSync(path.join(volume, RESTORE_DIR))).toBe(false);
    expect(content()).toEqual(RESTORED);
  });

  it('finishes a swap interrupted in either step, whatever had been moved', () => {
    setUp();
    const base = path.join(volume, RESTORE_DIR);
    // Interrupted while stashing: the journal says so, one entry is already aside.
    fs.mkdirSync(path.join(base, `${ID}.previous`));
    fs.writeFileSync(path.join(base, `${ID}.journal`), JSON.stringify({ phase: 'stash' }));
    fs.renameSync(path.join(volume, 'openclaw.json'), path.join(base, `${ID}.previous`, 'openclaw.json'));
    expect(swap()).toMatchObject({ ok: true });
    expect(content()).toEqual(RESTORED);
    expect(clear()).toMatchObject({ ok: true });

    fs.rmSync(volume, { recursive: true });
    fs.mkdirSync(volume);
    setUp();
    // Interrupted while installing: everything old is aside, part of the new is in place.
    fs.mkdirSync(path.join(base, `${ID}.previous`));
    for (const name of ['openclaw.json', 'workspace']) fs.renameSync(path.join(volume, name), path.join(base, `${ID}.previous`, name));
    fs.writeFileSync(path.join(base, `${ID}.journal`), JSON.stringify({ phase: 'install' }));
    fs.renameSync(path.join(base, ID, 'workspace'), path.join(volume, 'workspace'));
    expect(swap()).toMatchObject({ ok: true });
    expect(content()).toEqual(RESTORED);
  });

  it('refuses to clear a swap that is under way, so its previous content cannot be lost', () => {
    setUp();
    fs.mkdirSync(path.join(volume, RESTORE_DIR, `${ID}.previous`));
    fs.writeFileSync(path.join(volume, RESTORE_DIR, `${ID}.journal`), JSON.stringify({ phase: 'install' }));
    expect(clear()).toMatchObject({ ok: false, code: 'CONFLICT' });
    expect(fs.existsSync(path.join(volume, RESTORE_DIR, ID))).toBe(true);
  });

  it('moves read-only folders both ways and can remove them afterwards', () => {
    setUp();
    fs.chmodSync(path.join(volume, 'workspace'), 0o555);
    fs.chmodSync(path.join(volume, RESTORE_DIR, ID, 'agents'), 0o555);
    expect(swap()).toMatchObject({ ok: true });
    expect(content()).toEqual(RESTORED);
    expect(clear()).toMatchObject({ ok: true });
  });

  it('a restore that was never unpacked is refused and changes nothing', () => {
    write('openclaw.json', 'old config');
    expect(swap()).toMatchObject({ ok: false, code: 'NOT_FOUND' });
    expect(content()).toEqual({ 'openclaw.json': 'old config' });
  });

  it('a step that fails puts the previous content back', () => {
    setUp();
    // A name in the restored tree that cannot be moved into the root: a file where the swap
    // expects nothing (the journal's install step finds it taken by a folder it cannot replace).
    fs.mkdirSync(path.join(volume, 'blocker'));
    fs.writeFileSync(path.join(volume, 'blocker', 'x'), 'x');
    fs.mkdirSync(path.join(volume, RESTORE_DIR, ID, 'blocker'));
    fs.writeFileSync(path.join(volume, RESTORE_DIR, ID, 'blocker', 'y'), 'y');
    const base = path.join(volume, RESTORE_DIR);
    // Stash done except that "blocker" stayed (as if it had appeared meanwhile).
    fs.mkdirSync(path.join(base, `${ID}.previous`));
    for (const name of ['openclaw.json', 'workspace']) fs.renameSync(path.join(volume, name), path.join(base, `${ID}.previous`, name));
    fs.writeFileSync(path.join(base, `${ID}.journal`), JSON.stringify({ phase: 'install' }));
    expect(swap()).toMatchObject({ ok: false });
    expect(content()).toEqual({ ...PREVIOUS, 'blocker/x': 'x' });
    expect(fs.existsSync(path.join(base, `${ID}.journal`))).toBe(false);
  });

  it('refuses ids and roots that could point anywhere else', () => {
    expect(runFileAgent({ op: 'swapVolume', volumeRoot: volume, id: '../../etc' })).toMatchObject({ ok: false, code: 'INVALID_PATH' });
    expect(runFileAgent({ op: 'swapVolume', volumeRoot: 'relative', id: ID })).toMatchObject({ ok: false, code: 'INVALID_PATH' });
  });
});
