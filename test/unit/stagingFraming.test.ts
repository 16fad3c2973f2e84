/**
 * The staging writer is the only thing that writes into the engine's archive stream, and the
 * engine reads whatever arrives as tar. These tests capture that stream and read it back: a body
 * that brings more or fewer bytes than its entry announced must never put a byte of its own
 * choosing where the engine would read a header.
 */
import { Readable } from 'node:stream';
import { extract, type Header } from 'tar-stream';
import { Staging, type StagingTarget } from '../../src/files/staging';
import { TAR_END, tarHeader, tarPadding } from '../../src/files/tarFraming';

interface Captured {
  staging: Staging;
  /** Every byte the engine would have read, once the request ended or was cut. */
  bytes: Promise<Buffer>;
  /** How the request ended. */
  outcome: Promise<'complete' | 'cut'>;
}

function capturedStaging(): Captured {
  let resolveBytes: (b: Buffer) => void = () => undefined;
  let resolveOutcome: (o: 'complete' | 'cut') => void = () => undefined;
  const bytes = new Promise<Buffer>((resolve) => (resolveBytes = resolve));
  const outcome = new Promise<'complete' | 'cut'>((resolve) => (resolveOutcome = resolve));
  const target: StagingTarget = {
    writeArchive: (_dir: string, archive: Readable, signal: AbortSignal) =>
      new Promise<void>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let done = false;
        const end = (how: 'complete' | 'cut') => {
          if (done) return;
          done = true;
          resolveBytes(Buffer.concat(chunks));
          resolveOutcome(how);
          if (how === 'complete') resolve();
          else reject(new Error('the write was cut'));
        };
        archive.on('data', (c: Buffer) => chunks.push(c));
        archive.on('end', () => end('complete'));
        archive.on('close', () => end('cut'));
        signal.addEventListener('abort', () => end('cut'));
      }),
  };
  return { staging: new Staging(target, '/volume'), bytes, outcome };
}

/** The headers of a tar stream, read leniently: a cut stream yields what came before the cut. */
async function headersOf(tar: Buffer): Promise<Header[]> {
  const reader = extract();
  const headers: Header[] = [];
  reader.on('entry', (header, body, next) => {
    headers.push(header);
    body.on('end', () => next());
    body.resume();
  });
  await new Promise<void>((resolve) => {
    reader.on('finish', resolve);
    reader.on('error', () => resolve());
    reader.on('close', () => resolve());
    reader.end(tar);
  });
  return headers;
}

/** A tar stream holding one file whose header a hostile client chose: owned by root, set-uid, outside staging. */
function forgedEntry(): Buffer {
  const content = Buffer.from('#!/bin/sh\nid\n');
  return Buffer.concat([
    tarHeader({ name: 'workspace/evil', type: 'file', size: content.length, mode: 0o4755, uid: 0, gid: 0, mtime: new Date() }),
    content,
    tarPadding(content.length),
    TAR_END,
  ]);
}

const MARK = 'SURPLUS-BYTES-FROM-THE-CLIENT';

describe('staging framing: the bytes that reach the archive write are exactly the framing we wrote', () => {
  test('an over-long body is cut at its announced size: no surplus byte reaches the engine, the write is aborted and later entries are refused', async () => {
    const { staging, bytes, outcome } = capturedStaging();
    const announced = 512;
    // The surplus is a forged, block-aligned tar entry: exactly what an attacker would send.
    const body = Buffer.concat([Buffer.alloc(announced, 0x61), Buffer.from(MARK), forgedEntry()]);
    const add = staging.add('0', announced, () => Readable.from([body.subarray(0, 300), body.subarray(300)]));
    await expect(add).rejects.toMatchObject({ code: 'SIZE_MISMATCH', status: 400 });
    await expect(staging.add('1', 3, () => Readable.from([Buffer.from('abc')]))).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    await expect(staging.finish()).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    expect(await outcome).toBe('cut');
    const written = await bytes;
    expect(written.includes(Buffer.from(MARK))).toBe(false);
    expect(written.includes(Buffer.from('workspace/evil'))).toBe(false);
    const names = (await headersOf(written)).map((h) => h.name);
    expect(names.every((n) => n.startsWith('.clawloops-staging'))).toBe(true);
    expect(names).not.toContain(`${staging.entryPrefix}/1`);
  });

  test('a short body stops the archive: the next entry, whose bytes would be read as the short one\'s, is never written', async () => {
    const { staging, bytes, outcome } = capturedStaging();
    const first = staging.add('0', 4096, () => Readable.from([Buffer.from('only this much')]));
    // The next file carries a forged header: if it followed the short entry, the engine would read it as one.
    const second = staging.add('1', forgedEntry().length, () => Readable.from([forgedEntry()]));
    await expect(first).rejects.toMatchObject({ code: 'SIZE_MISMATCH', status: 400 });
    await expect(second).rejects.toMatchObject({ code: 'SIZE_MISMATCH' });
    expect(await outcome).toBe('cut');
    const written = await bytes;
    expect(written.includes(Buffer.from('workspace/evil'))).toBe(false);
    expect(written.includes(Buffer.from(`${staging.entryPrefix}/1`))).toBe(false);
  });

  test('a body that fails part way stops the archive the same way', async () => {
    const { staging, outcome, bytes } = capturedStaging();
    const failing = new Readable({ read() {} });
    const add = staging.add('0', 10_000, () => failing);
    failing.push(Buffer.alloc(100));
    failing.destroy(new Error('client went away'));
    await expect(add).rejects.toThrow('client went away');
    expect(await outcome).toBe('cut');
    expect((await bytes).length).toBeLessThan(2048 + 512 + 100 + 1);
  });

  test('exact bodies pass unchanged, padded to blocks, with the runtime user as owner and no set-id bits', async () => {
    const { staging, bytes, outcome } = capturedStaging();
    await staging.add('0', 5, () => Readable.from([Buffer.from('hel'), Buffer.from('lo')]));
    await staging.entry({ name: 'dir', type: 'directory', mode: 0o4777 });
    await staging.entry({ name: 'dir/run', type: 'file', size: 2, mode: 0o6755 }, () => Readable.from([Buffer.from('hi')]));
    await staging.finish();
    expect(await outcome).toBe('complete');
    const headers = await headersOf(await bytes);
    const own = headers.filter((h) => h.name.startsWith(`${staging.entryPrefix}/`) && h.name !== `${staging.entryPrefix}/`);
    expect(own.map((h) => [h.name.slice(staging.entryPrefix.length + 1), h.type, h.mode, h.uid, h.gid])).toEqual([
      ['0', 'file', 0o644, 1000, 1000],
      ['dir/', 'directory', 0o777, 1000, 1000],
      ['dir/run', 'file', 0o755, 1000, 1000],
    ]);
  });
});

describe('tar headers', () => {
  test('long and non-ASCII names and link targets travel in PAX records that tar readers understand', async () => {
    const longName = `${'ä'.repeat(60)}/${'b'.repeat(150)}/file.txt`;
    const longTarget = `${'../x/'.repeat(30)}target`;
    const tar = Buffer.concat([
      tarHeader({ name: longName, type: 'file', size: 3, mode: 0o644, uid: 1000, gid: 1000, mtime: new Date(0) }),
      Buffer.from('abc'),
      tarPadding(3),
      tarHeader({ name: 'short-link', type: 'symlink', size: 0, linkname: longTarget, mode: 0o777, uid: 1000, gid: 1000, mtime: new Date(0) }),
      tarHeader({ name: `${'d'.repeat(120)}`, type: 'directory', size: 0, mode: 0o755, uid: 1000, gid: 1000, mtime: new Date(0) }),
      TAR_END,
    ]);
    const headers = await headersOf(tar);
    expect(headers.map((h) => [h.name, h.type, h.linkname ?? null])).toEqual([
      [longName, 'file', null],
      ['short-link', 'symlink', longTarget],
      [`${'d'.repeat(120)}/`, 'directory', null],
    ]);
  });

  test('refuses a name with a NUL byte', () => {
    expect(() => tarHeader({ name: 'a\0b', type: 'file', size: 0, mode: 0o644, uid: 1000, gid: 1000, mtime: new Date() })).toThrow(/NUL/);
  });
});
