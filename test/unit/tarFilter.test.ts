import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { inFolders, TarEntrySieve } from '../../src/backup/tarFilter';

/**
 * The backup's pass-through tar filter against archives GNU tar writes (ustar, pax, GNU long
 * names): the staging folder's entries are gone, everything else lists and extracts exactly as
 * before, whatever the chunking of the stream.
 */
let root: string;
const LONG = `${'a-very-long-folder-name-'.repeat(5)}/${'and-a-long-file-name-'.repeat(4)}.txt`;
const FILES: Record<string, Buffer> = {
  '.openclaw/openclaw.json': Buffer.from('{}'),
  '.openclaw/workspace/notes — 笔记.md': Buffer.from('unicode'),
  [`.openclaw/workspace/${LONG}`]: randomBytes(70_000),
  '.openclaw/workspace/empty.txt': Buffer.alloc(0),
  '.openclaw/.clawloops-staging/abc/part': randomBytes(5_000),
  [`.openclaw/.clawloops-staging/abc/${LONG}`]: randomBytes(1_000),
  '.openclaw/.clawloops-stagingX/kept-despite-the-prefix': Buffer.from('kept'),
};
const staging = '.openclaw/.clawloops-staging';
const dropStaging = inFolders([staging]);

beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'tar-filter-'));
  for (const [name, content] of Object.entries(FILES)) {
    fs.mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
    fs.writeFileSync(path.join(root, name), content);
  }
  fs.linkSync(path.join(root, '.openclaw/openclaw.json'), path.join(root, '.openclaw/workspace/hardlink.json'));
  fs.mkdirSync(path.join(root, '.openclaw/workspace/empty-folder'));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

const list = (tar: Buffer) => execFileSync('tar', ['-t'], { input: tar }).toString().split('\n').filter(Boolean).sort();

/**
 * The archive through the sieve in pieces of `pieceSize`, each fed from one buffer that is
 * scribbled over once `feed` returns, as the sealing worker hands its buffers back.
 */
function filtered(tar: Buffer, pieceSize: number, end = tar.length): Buffer {
  const sieve = new TarEntrySieve(dropStaging);
  const scratch = Buffer.alloc(pieceSize);
  const out: Buffer[] = [];
  for (let i = 0; i < end; i += pieceSize) {
    const n = tar.copy(scratch, 0, i, Math.min(i + pieceSize, end));
    sieve.feed(scratch.subarray(0, n), (view) => out.push(Buffer.from(view)));
    scratch.fill(0xa5);
  }
  sieve.finish();
  return Buffer.concat(out);
}

test.each(['pax', 'gnu', 'ustar'] as const)('%s archives: the staging entries are dropped, the rest lists and extracts as it was', async (format) => {
    // ustar holds no name over 255 bytes: the long one stays out of its archive.
  const files = format === 'ustar' ? ['.openclaw/openclaw.json', '.openclaw/workspace/empty.txt', '.openclaw/.clawloops-staging/abc/part', '.openclaw/.clawloops-stagingX'] : ['.openclaw'];
  const tar = execFileSync('tar', ['-c', `--format=${format}`, '-C', root, ...files], { maxBuffer: 1 << 26 });
  const expected = list(tar).filter((name) => !dropStaging(name));
  for (const pieceSize of [1, 511, 512, 4096, 1 << 20]) {
    const out = filtered(tar, pieceSize);
    expect({ pieceSize, listed: list(out) }).toEqual({ pieceSize, listed: expected });
  }
  const out = filtered(tar, 777);
  const target = fs.mkdtempSync(path.join(os.tmpdir(), 'tar-filter-out-'));
  try {
    execFileSync('tar', ['-x', '-C', target], { input: out });
    for (const [name, content] of Object.entries(FILES)) {
      if (dropStaging(name) || !files.some((f) => name.startsWith(f))) continue;
      expect({ name, same: fs.readFileSync(path.join(target, name)).equals(content) }).toEqual({ name, same: true });
    }
    expect(fs.existsSync(path.join(target, staging))).toBe(false);
  } finally {
    fs.rmSync(target, { recursive: true, force: true });
  }
});

test('an archive cut in the middle of an entry fails', () => {
  const tar = execFileSync('tar', ['-c', '--format=pax', '-C', root, '.openclaw'], { maxBuffer: 1 << 26 });
  expect(() => filtered(tar, 4096, 2048 + 100)).toThrow(/ended in the middle/);
});
