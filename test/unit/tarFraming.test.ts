/**
 * The hand-written tar framing (src/files/tarFraming.ts) against tar-stream as the oracle, both
 * ways: headers we write are read back by tar-stream as we meant them, and archives tar-stream
 * writes (PAX records, GNU long names, long and non-ASCII names, base-256 sizes) are read by
 * firstTarFile as tar-stream reads them, whatever the chunking of the stream.
 */
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { extract, pack, type Header } from 'tar-stream';
import { firstTarFile, TAR_END, tarHeader, tarPadding, type TarEntryHeader } from '../../src/files/tarFraming';

const GiB = 1024 ** 3;

type WrittenHeader = Partial<Header> & Pick<Header, 'name'>;

interface OracleEntry {
  header: Header;
  body: Buffer;
}

/** Every entry of a tar stream as tar-stream reads it. */
async function oracleRead(tar: Buffer): Promise<OracleEntry[]> {
  const reader = extract();
  const entries: OracleEntry[] = [];
  reader.on('entry', (header, body, next) => {
    void buffer(body).then((bytes) => {
      entries.push({ header, body: bytes });
      next();
    });
  });
  const done = new Promise<void>((resolve, reject) => {
    reader.on('finish', resolve);
    reader.on('error', reject);
  });
  reader.end(tar);
  await done;
  return entries;
}

/** Only the first header as tar-stream reads it (for entries too large to carry their body). */
function oracleFirstHeader(bytes: Buffer): Promise<Header> {
  const reader = extract();
  return new Promise((resolve, reject) => {
    reader.on('entry', (header) => {
      resolve(header);
      reader.destroy();
    });
    reader.on('error', reject);
    reader.write(bytes);
  });
}

/** An archive written by tar-stream. */
async function oracleWrite(entries: { header: WrittenHeader; body?: Buffer }[]): Promise<Buffer> {
  const packer = pack();
  const out = buffer(packer);
  for (const { header, body } of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (body === undefined) packer.entry(header, done);
      else packer.entry(header, body, done);
    });
  }
  packer.finalize();
  return out;
}

/**
 * A GNU long-name entry ('L'), which tar-stream reads but does not write: our ustar block with
 * its typeflag changed and the checksum done again.
 */
function gnuLongName(name: string): Buffer {
  const data = Buffer.from(`${name}\0`);
  const header = tarHeader(entry({ name: '././@LongLink', size: data.length }));
  header.write('L', 156, 1, 'ascii');
  header.fill(0x20, 148, 156);
  const sum = header.reduce((total, b) => total + b, 0);
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return Buffer.concat([header, data, tarPadding(data.length)]);
}

/** firstTarFile fed `tar` in the given pieces. */
async function readFirst(pieces: Buffer[]): Promise<{ type: string; size: number; mtime: number; body: Buffer }> {
  const { head, body } = await firstTarFile(Readable.from(pieces, { objectMode: false }));
  return { type: head.type, size: head.size, mtime: head.mtime.getTime(), body: await buffer(body) };
}

const entry = (over: Partial<TarEntryHeader>): TarEntryHeader => ({
  name: 'file.txt',
  type: 'file',
  size: 0,
  mode: 0o644,
  uid: 1000,
  gid: 1000,
  mtime: new Date('2026-03-04T05:06:07Z'),
  ...over,
});

/** One file entry of ours, framed completely: header, content, padding. */
const ours = (header: TarEntryHeader, content = Buffer.alloc(0)) => Buffer.concat([tarHeader({ ...header, size: content.length }), content, tarPadding(content.length)]);

describe('tarHeader: what we write, tar-stream reads as meant', () => {
  const cases: [string, Partial<TarEntryHeader>][] = [
    ['a short ASCII name', { name: 'notes/readme.md' }],
    ['a name of exactly 100 bytes (no PAX)', { name: 'n'.repeat(100) }],
    ['a name of 101 bytes (PAX path)', { name: 'n'.repeat(101) }],
    ['a long name with folders', { name: `${'deep/'.repeat(40)}file.bin` }],
    ['a short non-ASCII name', { name: 'Übersicht – 日本語.txt' }],
    ['a non-ASCII name over 100 bytes', { name: `${'ä'.repeat(60)}/${'ß'.repeat(30)}.txt` }],
    ['an emoji name', { name: 'notes/🦀🦀.md' }],
    ['a directory (gains its slash)', { name: 'folder', type: 'directory' }],
    ['a long directory name', { name: 'd'.repeat(150), type: 'directory' }],
    ['a symlink with a long non-ASCII target', { name: 'link', type: 'symlink', linkname: `${'../ö/'.repeat(30)}target` }],
    ['a long symlink with a long target', { name: 'l'.repeat(120), type: 'symlink', linkname: 't'.repeat(130) }],
    ['odd permission bits (set-id and sticky dropped)', { name: 'x', mode: 0o7755 }],
    ['an mtime before 1970 (clamped to 0)', { name: 'old', mtime: new Date(-5000) }],
  ];

  test.each(cases)('%s', async (_label, over) => {
    const header = entry(over);
    const content = header.type === 'file' ? Buffer.from(`content of ${header.name}\n`) : Buffer.alloc(0);
    const [read, ...rest] = await oracleRead(Buffer.concat([ours(header, content), TAR_END]));
    expect(rest).toEqual([]);
    const expectedName = header.type === 'directory' && !header.name.endsWith('/') ? `${header.name}/` : header.name;
    expect({
      name: read?.header.name,
      type: read?.header.type,
      size: read?.header.size,
      mode: read?.header.mode,
      uid: read?.header.uid,
      gid: read?.header.gid,
      mtime: read?.header.mtime?.getTime(),
      linkname: read?.header.linkname ?? null,
      body: read?.body.toString(),
    }).toEqual({
      name: expectedName,
      type: header.type,
      size: content.length,
      mode: header.mode & 0o777,
      uid: header.uid,
      gid: header.gid,
      mtime: Math.max(0, Math.floor(header.mtime.getTime() / 1000)) * 1000,
      linkname: header.linkname ?? null,
      body: content.toString(),
    });
  });

  test('several entries in a row keep their framing', async () => {
    const names = ['a', 'b'.repeat(200), 'ć/ď', 'e'];
    const tar = Buffer.concat([...names.map((name, i) => ours(entry({ name }), Buffer.alloc(i * 700, i + 65))), TAR_END]);
    const read = await oracleRead(tar);
    expect(read.map((e, i) => [e.header.name, e.body.length, e.body.every((b) => b === i + 65)])).toEqual(names.map((name, i) => [name, i * 700, true]));
  });

  test.each([
    ['just under 8 GiB (octal)', 8 * GiB - 1],
    ['8 GiB (base-256)', 8 * GiB],
    ['a 1 TiB file (base-256)', 1024 * GiB],
    ['the largest safe integer (base-256)', Number.MAX_SAFE_INTEGER],
  ])('a size of %s reads back exactly', async (_label, size) => {
    const header = tarHeader(entry({ name: 'huge.bin', size }));
    await expect(oracleFirstHeader(header)).resolves.toMatchObject({ name: 'huge.bin', size });
    const { head, body } = await firstTarFile(Readable.from([header]));
    body.destroy();
    expect(head.size).toBe(size);
  });

  test('refuses a name or a link target with a NUL byte', () => {
    expect(() => tarHeader(entry({ name: 'a\0b' }))).toThrow(/NUL/);
    expect(() => tarHeader(entry({ name: 'l', type: 'symlink', linkname: 'x\0y' }))).toThrow(/NUL/);
  });
});

describe('firstTarFile: what tar-stream writes, we read as tar-stream does', () => {
  const content = Buffer.from(Array.from({ length: 1500 }, (_, i) => (i * 7) % 256));
  const mtime = new Date('2025-12-24T18:00:00Z');
  const archives: [string, () => Promise<Buffer>][] = [
    ['a plain ustar file', () => oracleWrite([{ header: { name: 'plain.bin', mtime, size: content.length }, body: content }])],
    ['a long name (ustar prefix field)', () => oracleWrite([{ header: { name: `${'dir/'.repeat(30)}f.bin`, mtime }, body: content }])],
    ['a long name without slashes (PAX path)', () => oracleWrite([{ header: { name: 'x'.repeat(180), mtime }, body: content }])],
    ['a non-ASCII name (PAX path)', () => oracleWrite([{ header: { name: 'données/résumé-😀.txt', mtime }, body: content }])],
    [
      'PAX records for size and mtime (as Go writes them)',
      () => oracleWrite([{ header: { name: 'pax.bin', mtime: new Date(0), size: content.length, pax: { size: String(content.length), mtime: String(mtime.getTime() / 1000) } }, body: content }]),
    ],
    [
      'a GNU long name in front of the file',
      async () => Buffer.concat([gnuLongName('g'.repeat(300)), await oracleWrite([{ header: { name: 'g'.repeat(99), mtime }, body: content }])]),
    ],
    ['an empty file followed by another', () => oracleWrite([{ header: { name: 'empty', mtime }, body: Buffer.alloc(0) }, { header: { name: 'next', mtime }, body: content }])],
    ['a file followed by others (only the first is read)', () => oracleWrite([{ header: { name: 'first', mtime }, body: content }, { header: { name: 'second', mtime }, body: Buffer.from('not this') }])],
    ['a directory first (not a file)', () => oracleWrite([{ header: { name: 'folder/', type: 'directory', mtime } }, { header: { name: 'folder/f', mtime }, body: content }])],
  ];

  test.each(archives)('%s, split at every byte', async (_label, write) => {
    const tar = await write();
    const [first] = await oracleRead(tar);
    const pax = first?.header.pax as Record<string, string> | null | undefined;
    const expected = {
      type: first?.header.type === 'file' ? 'file' : 'other',
      size: first?.header.type === 'file' ? first.header.size : first?.header.size,
      // tar-stream keeps PAX records it does not apply in `pax`; POSIX says an mtime record wins.
      mtime: pax?.mtime !== undefined ? Number(pax.mtime) * 1000 : first?.header.mtime.getTime(),
      body: first?.header.type === 'file' ? first.body : Buffer.alloc(0),
    };
    expect(await readFirst([tar])).toEqual(expected);
    // The headers and the file's end may arrive split anywhere: the result never changes.
    for (let at = 1; at < tar.length; at++) {
      const result = await readFirst([tar.subarray(0, at), tar.subarray(at)]);
      if (!result.body.equals(expected.body) || result.size !== expected.size || result.mtime !== expected.mtime || result.type !== expected.type) {
        throw new Error(`split at byte ${at}: ${JSON.stringify({ ...result, body: result.body.length })}`);
      }
    }
  });

  test('one byte at a time', async () => {
    const tar = await oracleWrite([{ header: { name: `${'ü'.repeat(80)}.bin`, mtime }, body: content }]);
    const pieces = Array.from({ length: tar.length }, (_, i) => tar.subarray(i, i + 1));
    await expect(readFirst(pieces)).resolves.toEqual({ type: 'file', size: content.length, mtime: mtime.getTime(), body: content });
  });

  test('a base-256 size written by tar-stream (a file of 9 GiB)', async () => {
    const packer = pack();
    const size = 9 * GiB;
    const sink = packer.entry({ name: 'nine-gib.bin', size, mtime });
    const header = (await new Promise<Buffer>((resolve) => packer.once('data', (data: unknown) => resolve(data as Buffer)))).subarray(0, 512);
    expect(header[124]).toBe(0x80);
    const { head, body } = await firstTarFile(Readable.from([header, Buffer.from('start of it')]));
    expect(head).toEqual({ type: 'file', size, mtime });
    body.destroy();
    // Nothing more is written: the entry and the archive end here, unfinished.
    sink.on('error', () => undefined);
    packer.on('error', () => undefined);
    packer.destroy();
  });

  test('an archive without a file, or cut short, is an error in words', async () => {
    await expect(firstTarFile(Readable.from([TAR_END]))).rejects.toThrow(/no file/);
    await expect(firstTarFile(Readable.from([Buffer.alloc(0)]))).rejects.toThrow(/ended before its first file/);
    const tar = await oracleWrite([{ header: { name: 'cut.bin', mtime }, body: content }]);
    const { body } = await firstTarFile(Readable.from([tar.subarray(0, 512 + 100)]));
    await expect(buffer(body)).rejects.toThrow(/ended 1400 bytes before the end of the file/);
  });
});
