import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { inFolders, TarEntryFilter } from '../../src/backup/tarFilter';

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

async function filtered(tar: Buffer, pieceSize: number): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for (let i = 0; i < tar.length; i += pieceSize) pieces.push(tar.subarray(i, i + pieceSize));
  return buffer(Readable.from(pieces).pipe(new TarEntryFilter(dropStaging)));
}

test.each(['pax', 'gnu', 'ustar'] as const)('%s archives: the staging entries are dropped, the rest lists and extracts as it was', async (format) => {
    // ustar holds no name over 255 bytes: the long one stays out of its archive.
  const files = format === 'ustar' ? ['.openclaw/openclaw.json', '.openclaw/workspace/empty.txt', '.openclaw/.clawloops-staging/abc/part', '.openclaw/.clawloops-stagingX'] : ['.openclaw'];
  const tar = execFileSync('tar', ['-c', `--format=${format}`, '-C', root, ...files], { maxBuffer: 1 << 26 });
  const expected = list(tar).filter((name) => !dropStaging(name));
  for (const pieceSize of [1, 511, 512, 4096, 1 << 20]) {
    const out = await filtered(tar, pieceSize);
    expect({ pieceSize, listed: list(out) }).toEqual({ pieceSize, listed: expected });
  }
  const out = await filtered(tar, 777);
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

test('an archive cut in the middle of an entry fails the stream', async () => {
  const tar = execFileSync('tar', ['-c', '--format=pax', '-C', root, '.openclaw'], { maxBuffer: 1 << 26 });
  await expect(buffer(Readable.from([tar.subarray(0, 2048 + 100)]).pipe(new TarEntryFilter(dropStaging)))).rejects.toThrow(/ended in the middle/);
});
