import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { extract, pack, type Header } from 'tar-stream';
import { repackArchive, safeEntryPath, type ImportLimits, type ImportTotals } from '../../src/files/archiveImport';
import { AppError } from '../../src/lib/errors';
import { importSink, Staging, type StagingTarget } from '../../src/files/staging';

// Known bug (see the failing test at the end): when repackArchive refuses an entry, tar-stream destroys
// that entry's stream with the refusal, and repackArchive has no 'error' listener on it, so the error is
// thrown as an uncaught exception that would end the server process. Here every entry stream gets a
// listener, so the refusals below can be checked for what the caller sees: the rejected promise.
jest.mock('tar-stream', () => {
  const actual = jest.requireActual<{ extract: typeof extract }>('tar-stream');
  return {
    ...actual,
    extract: (...args: Parameters<typeof extract>) => {
      const reader = actual.extract(...args);
      reader.on('entry', (_header, body) => body.on('error', () => undefined));
      return reader;
    },
  };
});

const PREFIX = 'upload-1/tree';
const UID = 1000;
const LIMITS: ImportLimits = { maxEntries: 100, maxTotalBytes: 1024 * 1024, maxFileBytes: 512 * 1024, totalLimitReason: 'the request size limit' };

interface EntrySpec {
  name: string;
  type?: Header['type'];
  content?: string | Buffer;
  linkname?: string;
  mode?: number;
}

/** A tar archive made by tar-stream from `entries`, owned by some other user than the runtime's. */
async function tarOf(entries: EntrySpec[]): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on('data', (chunk) => chunks.push(chunk as Buffer));
  const ended = new Promise<void>((resolve) => archive.on('end', () => resolve()));
  for (const { content, ...header } of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (content === undefined) archive.entry({ uid: 4242, gid: 4242, ...header }, done);
      else archive.entry({ uid: 4242, gid: 4242, ...header }, content, done);
    });
  }
  archive.finalize();
  await ended;
  return Buffer.concat(chunks);
}

interface ReadEntry {
  header: Header;
  content: Buffer;
}

/** The entries of a tar archive, read back with tar-stream. */
async function entriesOf(tar: Buffer): Promise<ReadEntry[]> {
  const reader = extract();
  reader.end(tar);
  const entries: ReadEntry[] = [];
  for await (const entry of reader) {
    const chunks: Buffer[] = [];
    for await (const chunk of entry) chunks.push(chunk as Buffer);
    entries.push({ header: entry.header, content: Buffer.concat(chunks) });
  }
  return entries;
}

/**
 * A staging folder whose archive write is captured: the bytes the engine would have read.
 * `bytes` resolves when the request's stream ends (or is cut).
 */
function capturedStaging(): { staging: Staging; bytes: Promise<Buffer> } {
  let resolveBytes: (b: Buffer) => void = () => undefined;
  const bytes = new Promise<Buffer>((resolve) => (resolveBytes = resolve));
  const target: StagingTarget = {
    writeArchive: (_dir: string, archive: Readable) =>
      new Promise<void>((resolve, reject) => {
        const chunks: Buffer[] = [];
        archive.on('data', (c: Buffer) => chunks.push(c));
        archive.on('end', () => {
          resolveBytes(Buffer.concat(chunks));
          resolve();
        });
        archive.on('close', () => {
          resolveBytes(Buffer.concat(chunks));
          reject(new Error('the write was cut'));
        });
      }),
  };
  return { staging: new Staging(target, '/volume'), bytes };
}

/**
 * Runs `repackArchive` on `input` into a real staging folder and reads back what reached the
 * engine's archive stream, with the staging folder's own name replaced by "upload-1".
 */
async function repack(input: Buffer | Readable, limits: ImportLimits = LIMITS): Promise<{ totals: ImportTotals; entries: ReadEntry[] }> {
  const { staging, bytes } = capturedStaging();
  const source = Buffer.isBuffer(input) ? Readable.from(input.length > 0 ? [input] : []) : input;
  try {
    const totals = await repackArchive(source, await importSink(staging, 'tree'), limits);
    await staging.finish();
    const entries = (await entriesOf(await bytes))
      .filter((e) => e.header.name.startsWith(`${staging.entryPrefix}/`) && e.header.name !== `${staging.entryPrefix}/`)
      .map((e) => ({ ...e, header: { ...e.header, name: e.header.name.replace(staging.entryPrefix, 'upload-1').replace(/\/$/, '') } }));
    return { totals, entries };
  } catch (err) {
    staging.cancel(err as Error);
    throw err;
  }
}

/**
 * Runs `repackArchive` on `input` (its stdin) in a separate Node process without the listeners this file
 * adds, and says how that process ended and what it printed.
 */
function repackInChild(input: Buffer): { status: number | null; lines: string[] } {
  const script = `
    const { repackArchive } = require('./src/files/archiveImport.ts');
    const drain = async (body) => { for await (const _ of body); };
    const sink = { directory: async () => {}, symlink: async () => {}, file: async (p, s, m, t, body) => drain(body) };
    repackArchive(process.stdin, sink, ${JSON.stringify(LIMITS)}).then(
      () => console.log('accepted'),
      (err) => console.log('refused ' + err.code),
    ).then(() => setTimeout(() => console.log('still running'), 100));
  `;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: path.join(__dirname, '../..'), input, encoding: 'utf8', timeout: 20_000 });
  return { status: child.status, lines: child.stdout.split('\n').filter(Boolean) };
}

/** What `repackArchive` refuses `input` with; fails the test when it accepts it. */
async function refusalOf(input: Buffer | Readable, limits: ImportLimits = LIMITS): Promise<AppError> {
  try {
    await repack(input, limits);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('repackArchive accepted the archive');
}

/** A lone ustar header for a file that declares `size` bytes, with none of them following. */
async function headerDeclaring(name: string, size: number): Promise<Buffer> {
  const tar = await tarOf([{ name, content: 'x' }]);
  const header = Buffer.from(tar.subarray(0, 512));
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 12, 'ascii');
  header.fill(' ', 148, 156);
  let sum = 0;
  for (const byte of header) sum += byte;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return header;
}

const SAMPLE: EntrySpec[] = [
  { name: 'project/', type: 'directory', mode: 0o755 },
  { name: 'project/README.md', content: '# hello\n', mode: 0o644 },
  { name: 'project/bin/run', content: '#!/bin/sh\necho hi\n', mode: 0o4755 },
  { name: 'project/data.bin', content: randomBytes(70_000), mode: 0o600 },
  { name: 'project/link', type: 'symlink', linkname: 'README.md' },
];

describe('archive import', () => {
  describe('safeEntryPath', () => {
    test.each([
      ['a/b/c.txt', 'a/b/c.txt'],
      ['./a//b/', 'a/b'],
      ['dir/./file', 'dir/file'],
    ])('normalises "%s" to "%s"', (name, expected) => {
      expect(safeEntryPath(name)).toBe(expected);
    });

    test.each([['./'], ['.'], ['']])('reads the archive root "%s" as null', (name) => {
      expect(safeEntryPath(name)).toBeNull();
    });

    test.each([
      ['climbing out with ".."', '../evil'],
      ['climbing out with ".." further down', 'a/../../evil'],
      ['that is absolute', '/etc/passwd'],
      ['with a NUL byte', 'a\0b'],
      ['with a name of 256 bytes', `${'x'.repeat(256)}/f`],
      ['longer than 4096 bytes', `${'d/'.repeat(2049)}f`],
    ])('refuses an entry name %s', (_what, name) => {
      expect(() => safeEntryPath(name)).toThrow(expect.objectContaining({ code: 'ARCHIVE_UNSAFE_ENTRY', status: 400 }));
    });
  });

  describe('repackArchive', () => {
    test('re-packs a tar under the prefix, with the runtime user as owner, set-id bits dropped and contents unchanged', async () => {
      const { totals, entries } = await repack(await tarOf(SAMPLE));
      expect(totals).toEqual({ entries: 5, files: 4, bytes: 8 + 18 + 70_000 });
      expect(entries.map((e) => [e.header.name, e.header.type])).toEqual([
        [PREFIX, 'directory'],
        [`${PREFIX}/project`, 'directory'],
        [`${PREFIX}/project/README.md`, 'file'],
        [`${PREFIX}/project/bin`, 'directory'],
        [`${PREFIX}/project/bin/run`, 'file'],
        [`${PREFIX}/project/data.bin`, 'file'],
        [`${PREFIX}/project/link`, 'symlink'],
      ]);
      for (const { header } of entries) {
        expect(header.uid).toBe(UID);
        expect(header.gid).toBe(UID);
      }
      const byName = Object.fromEntries(entries.map((e) => [e.header.name.slice(PREFIX.length + 1), e]));
      expect(byName['project/bin/run']?.header.mode).toBe(0o755);
      expect(byName['project/README.md']?.header.mode).toBe(0o644);
      expect(byName['project/data.bin']?.header.mode).toBe(0o600);
      expect(byName['project/link']?.header.linkname).toBe('README.md');
      for (const spec of SAMPLE.filter((s) => s.content !== undefined)) {
        expect(byName[spec.name]?.content.equals(Buffer.from(spec.content as string | Buffer))).toBe(true);
      }
    });

    test('reads a .tar.gz the same as a .tar', async () => {
      const tar = await tarOf(SAMPLE);
      const plain = await repack(tar);
      const gzipped = await repack(gzipSync(tar));
      expect(gzipped.totals).toEqual(plain.totals);
      expect(gzipped.entries.map((e) => [e.header.name, e.header.mode, e.content.toString('base64')])).toEqual(
        plain.entries.map((e) => [e.header.name, e.header.mode, e.content.toString('base64')]),
      );
    });

    test('reads an archive that arrives in many small chunks', async () => {
      const tar = await tarOf(SAMPLE);
      const pieces: Buffer[] = [];
      for (let i = 0; i < tar.length; i += 1000) pieces.push(tar.subarray(i, i + 1000));
      const { totals } = await repack(Readable.from(pieces));
      expect(totals.files).toBe(4);
    });

    test('leaves out the archive\'s own root folder ("./") but counts it as an entry', async () => {
      const { totals, entries } = await repack(await tarOf([{ name: './', type: 'directory' }, { name: './a.txt', content: 'a' }]));
      expect(entries.map((e) => e.header.name)).toEqual([PREFIX, `${PREFIX}/a.txt`]);
      expect(totals).toEqual({ entries: 2, files: 1, bytes: 1 });
    });

    test('makes folders and files readable and writable by their owner', async () => {
      const { entries } = await repack(await tarOf([{ name: 'locked/', type: 'directory', mode: 0o500 }, { name: 'locked/ro.txt', content: 'r', mode: 0o400 }]));
      expect(entries.map((e) => e.header.mode)).toEqual([0o700, 0o700, 0o600]);
    });

    test('accepts a symlink whose relative target stays inside the import', async () => {
      const { entries } = await repack(await tarOf([
        { name: 'file', content: 'f' },
        { name: 'dir/', type: 'directory' },
        { name: 'dir/link', type: 'symlink', linkname: '../file' },
      ]));
      expect(entries.find((e) => e.header.type === 'symlink')?.header).toMatchObject({ name: `${PREFIX}/dir/link`, linkname: '../file' });
    });

    test.each<[string, EntrySpec[]]>([
      ['an entry climbing out with ".."', [{ name: '../evil', content: 'x' }]],
      ['an absolute entry name', [{ name: '/etc/passwd', content: 'root::0:0::/:/bin/sh' }]],
      ['a symlink to an absolute path', [{ name: 'passwd', type: 'symlink', linkname: '/etc/passwd' }]],
      ['a symlink climbing out of the import', [{ name: 'dir/link', type: 'symlink', linkname: '../../x' }]],
      ['a symlink to the folder above the import', [{ name: 'up', type: 'symlink', linkname: '..' }]],
      ['a hard link', [{ name: 'file', content: 'f' }, { name: 'hard', type: 'link', linkname: 'file' }]],
      ['a character device', [{ name: 'null', type: 'character-device' }]],
      ['a block device', [{ name: 'sda', type: 'block-device' }]],
      ['a FIFO', [{ name: 'pipe', type: 'fifo' }]],
    ])('refuses %s with 400 ARCHIVE_UNSAFE_ENTRY', async (_what, specs) => {
      const err = await refusalOf(await tarOf(specs));
      expect(err.code).toBe('ARCHIVE_UNSAFE_ENTRY');
      expect(err.status).toBe(400);
    });

    // Known bug, left unfixed here: link targets are judged lexically from the link's own path, but the
    // path may run through a symlink of the same archive. "a/b/up -> ../.." is the import folder itself, so
    // "a/b/up/esc" is really "esc" and its target ".." is the folder ABOVE the import, though
    // "a/b/up/../.." looks like "a" to the check. Drop `.failing` once such archives are refused.
    test('refuses a symlink that climbs out through another symlink of the same archive', async () => {
      const err = await refusalOf(await tarOf([
        { name: 'a/b/', type: 'directory' },
        { name: 'a/b/up', type: 'symlink', linkname: '../..' },
        { name: 'a/b/up/esc', type: 'symlink', linkname: '..' },
      ]));
      expect(err.code).toBe('ARCHIVE_UNSAFE_ENTRY');
    });

    test('refuses more entries than allowed with 413 ARCHIVE_TOO_MANY_ENTRIES', async () => {
      const specs = Array.from({ length: 4 }, (_, i) => ({ name: `f${i}.txt`, content: String(i) }));
      const limits = { ...LIMITS, maxEntries: 3 };
      const err = await refusalOf(await tarOf(specs), limits);
      expect(err.code).toBe('ARCHIVE_TOO_MANY_ENTRIES');
      expect(err.status).toBe(413);
      await expect(repack(await tarOf(specs.slice(0, 3)), limits)).resolves.toMatchObject({ totals: { entries: 3 } });
    });

    test('refuses from the header alone a file declaring more bytes than the total allowed, with 413 ARCHIVE_TOO_LARGE', async () => {
      // 5 GB declared, none of it sent: only the header can have told.
      const limits = { ...LIMITS, maxFileBytes: 10 * 1024 ** 3, totalLimitReason: 'the 1048576 bytes left of your quota' };
      const started = Date.now();
      const err = await refusalOf(await headerDeclaring('bomb.bin', 5 * 1024 ** 3), limits);
      expect(err.code).toBe('ARCHIVE_TOO_LARGE');
      expect(err.status).toBe(413);
      expect(err.message).toMatch(/bytes left of your quota/);
      expect(Date.now() - started).toBeLessThan(2000);
    });

    test('refuses files that add up to more than the total allowed', async () => {
      const specs = Array.from({ length: 3 }, (_, i) => ({ name: `f${i}.bin`, content: Buffer.alloc(400) }));
      const err = await refusalOf(await tarOf(specs), { ...LIMITS, maxTotalBytes: 1000 });
      expect(err.code).toBe('ARCHIVE_TOO_LARGE');
      expect(err.status).toBe(413);
    });

    test('refuses a file over the size limit for one file with 413 FILE_TOO_LARGE', async () => {
      const err = await refusalOf(await tarOf([{ name: 'big.bin', content: Buffer.alloc(2048) }]), { ...LIMITS, maxFileBytes: 2047 });
      expect(err.code).toBe('FILE_TOO_LARGE');
      expect(err.status).toBe(413);
      await expect(repack(await tarOf([{ name: 'big.bin', content: Buffer.alloc(2048) }]), { ...LIMITS, maxFileBytes: 2048 })).resolves.toBeDefined();
    });

    test('refuses a truncated archive with 400 ARCHIVE_INVALID', async () => {
      const tar = await tarOf([{ name: 'a.bin', content: randomBytes(8192) }]);
      const err = await refusalOf(tar.subarray(0, Math.floor(tar.length / 2)));
      expect(err.code).toBe('ARCHIVE_INVALID');
      expect(err.status).toBe(400);
    });

    test('refuses a truncated .tar.gz with 400 ARCHIVE_INVALID', async () => {
      const gz = gzipSync(await tarOf([{ name: 'a.bin', content: randomBytes(8192) }]));
      const err = await refusalOf(gz.subarray(0, Math.floor(gz.length / 2)));
      expect(err.code).toBe('ARCHIVE_INVALID');
      expect(err.status).toBe(400);
    });

    test('refuses an empty upload with 400 ARCHIVE_INVALID', async () => {
      const err = await refusalOf(Buffer.alloc(0));
      expect(err.code).toBe('ARCHIVE_INVALID');
      expect(err.status).toBe(400);
    });

    test('refuses an archive without entries with 400 ARCHIVE_INVALID', async () => {
      const err = await refusalOf(await tarOf([]));
      expect(err.code).toBe('ARCHIVE_INVALID');
      expect(err.status).toBe(400);
    });

    test('refuses bytes that are not an archive with 400 ARCHIVE_INVALID', async () => {
      const garbage = randomBytes(4096);
      garbage[0] = 0x42; // anything but the gzip magic
      const err = await refusalOf(garbage);
      expect(err.code).toBe('ARCHIVE_INVALID');
      expect(err.status).toBe(400);
    });

    test('refuses a gzip stream that does not hold a tar with 400 ARCHIVE_INVALID', async () => {
      const err = await refusalOf(gzipSync(Buffer.from('just some text, not a tar archive\n'.repeat(50))));
      expect(err.code).toBe('ARCHIVE_INVALID');
      expect(err.status).toBe(400);
    });

    // Known bug, left unfixed here: see the jest.mock above. In a plain Node process (no such listeners) a
    // refused archive kills the process with an uncaught 'error' event, before repackArchive's promise even
    // rejects: "../evil" through tar-stream's entry stream, a truncated archive through the entry `out` got
    // for the file. Drop `.failing` once both survive.
    test('refuses an unsafe entry without an uncaught error that would end the process', async () => {
      expect(repackInChild(await tarOf([{ name: '../evil', content: 'x' }]))).toEqual({ status: 0, lines: ['refused ARCHIVE_UNSAFE_ENTRY', 'still running'] });
    });

    test('refuses a truncated archive without an uncaught error that would end the process', async () => {
      const tar = await tarOf([{ name: 'a.bin', content: randomBytes(8192) }]);
      expect(repackInChild(tar.subarray(0, Math.floor(tar.length / 2)))).toEqual({ status: 0, lines: ['refused ARCHIVE_INVALID', 'still running'] });
    });

    test('survives an accepted archive in a plain Node process (the check of the two tests above works)', async () => {
      expect(repackInChild(await tarOf([{ name: 'fine.txt', content: 'x' }]))).toEqual({ status: 0, lines: ['accepted', 'still running'] });
    });
  });
});
