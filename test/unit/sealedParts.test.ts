import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { generateIdentity } from '../../src/backup/ageFormat';
import { buffer } from 'node:stream/consumers';
import { extract, pack } from 'tar-stream';
import { PartSealer } from '../../src/backup/sealedParts';
import { endlessAnswer, startStandInEngine, writeChunked, type StandInEngine } from '../support/standInEngine';

/**
 * Backup parts sealed in a worker thread: what comes out is an age file the reference tool
 * decrypts to exactly the input, with the sizes and hash reported; a failing source or a file
 * that exists already fails the part without hanging, and nothing is held in memory beyond a
 * few pieces (the sender waits for the worker). A part read from the engine's socket (a
 * stand-in engine here) leaves the folders it is told to out, and a missing path, a refusal, an
 * answer cut short or a stop each end it with what happened, leaving no file.
 */
let dir: string;
const key = generateIdentity();
const sealer = new PartSealer();
const writePart = (source: Readable, file: string, recipient: Buffer) => sealer.seal(source, [], file, recipient);
afterAll(() => sealer.close());
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sealed-parts-'));
  fs.writeFileSync(path.join(dir, 'key.txt'), key.text, { mode: 0o600 });
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

test('a part sealed in the worker decrypts with age to exactly what went in; sizes and SHA-256 as reported', async () => {
  const plain = randomBytes(9 * 1024 * 1024 + 123);
  // Odd-sized pieces, as an engine's stream delivers them.
  const pieces = [plain.subarray(0, 1), plain.subarray(1, 70_001), plain.subarray(70_001)];
  const file = path.join(dir, 'part.age');
  const result = await writePart(Readable.from(pieces), file, key.identity.publicRaw);
  const sealed = fs.readFileSync(file);
  expect(result).toEqual({ plainBytes: plain.length, bytes: sealed.length, sha256: createHash('sha256').update(sealed).digest('hex') });
  const decrypted = execFileSync('age', ['-d', '-i', path.join(dir, 'key.txt'), file], { maxBuffer: 1 << 26 });
  expect(decrypted.equals(plain)).toBe(true);
});

test('a source that fails mid-way fails the part with its error, and leaves no file', async () => {
  async function* failing() {
    yield randomBytes(3 * 1024 * 1024);
    throw new Error('the engine dropped the stream');
  }
  await expect(writePart(Readable.from(failing()), path.join(dir, 'part.age'), key.identity.publicRaw)).rejects.toThrow('the engine dropped the stream');
  expect(fs.existsSync(path.join(dir, 'part.age'))).toBe(false);
  // The worker seals the next part as if nothing had happened.
  const next = randomBytes(1024 * 1024 + 1);
  expect((await writePart(Readable.from([next]), path.join(dir, 'next.age'), key.identity.publicRaw)).plainBytes).toBe(next.length);
});

test('a part file that exists already is never overwritten', async () => {
  const file = path.join(dir, 'part.age');
  fs.writeFileSync(file, 'earlier');
  await expect(writePart(Readable.from([randomBytes(4 * 1024 * 1024)]), file, key.identity.publicRaw)).rejects.toThrow(/EEXIST/);
  expect(fs.readFileSync(file, 'utf8')).toBe('earlier');
});

test('parts sealed one after another by the same worker, even when asked for at once, and after a failed one', async () => {
  const contents = [randomBytes(2 * 1024 * 1024), randomBytes(3 * 1024 * 1024 + 5)];
  const results = await Promise.all(contents.map((c, i) => writePart(Readable.from([c]), path.join(dir, `p${i}.age`), key.identity.publicRaw)));
  for (const [i, c] of contents.entries()) {
    expect(results[i]?.plainBytes).toBe(c.length);
    expect(execFileSync('age', ['-d', '-i', path.join(dir, 'key.txt'), path.join(dir, `p${i}.age`)], { maxBuffer: 1 << 26 }).equals(c)).toBe(true);
  }
});

describe('a part read from the engine\'s socket', () => {
  let engine: StandInEngine;
  beforeEach(async () => {
    engine = await startStandInEngine();
  });
  afterEach(() => engine.close());
  const request = () => ({ socketPath: engine.socketPath, apiVersion: 'v1.41', containerId: 'helper', path: '/home/node/.openclaw' });
  const leaveOut = ['.openclaw/.clawloops-staging', '.openclaw/.clawloops-restore'];
  const fromEngine = (file: string, signal = new AbortController().signal) => sealer.sealEngineArchive(request(), leaveOut, file, key.identity.publicRaw, signal);

  async function volumeTar(files: Record<string, Buffer>): Promise<Buffer> {
    const archive = pack();
    for (const [name, content] of Object.entries(files)) archive.entry({ name, size: content.length }, content);
    archive.finalize();
    return buffer(archive);
  }

  async function entriesOf(tar: Buffer): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    const reader = extract();
    reader.on('entry', (header, stream, next) => {
      void buffer(stream).then((content) => {
        out[header.name] = createHash('sha256').update(content).digest('hex');
        next();
      });
    });
    const done = new Promise<void>((resolve, reject) => reader.on('finish', () => resolve()).on('error', reject));
    reader.end(tar);
    await done;
    return out;
  }

  test('is the volume\'s tar without the left-out folders, decryptable by age, with its sizes and SHA-256', async () => {
    const kept = { '.openclaw/openclaw.json': Buffer.from('{}'), '.openclaw/workspace/big — 大.bin': randomBytes(5 * 1024 * 1024 + 7) };
    const tar = await volumeTar({ ...kept, '.openclaw/.clawloops-staging/u1/upload.part': randomBytes(300_000), '.openclaw/.clawloops-restore/old.bin': randomBytes(1000) });
    engine.answer = (socket) => writeChunked(socket, tar, [32 * 1024, 5, 100_000]);
    const file = path.join(dir, 'volume.age');
    const result = await fromEngine(file);
    expect(engine.requests[0]).toMatch(/^GET \/v1\.41\/containers\/helper\/archive\?path=%2Fhome%2Fnode%2F.openclaw HTTP\/1\.1\r\n/);
    const sealed = fs.readFileSync(file);
    const plain = execFileSync('age', ['-d', '-i', path.join(dir, 'key.txt'), file], { maxBuffer: 1 << 26 });
    expect(result).toEqual({ plainBytes: plain.length, bytes: sealed.length, sha256: createHash('sha256').update(sealed).digest('hex') });
    expect(await entriesOf(plain)).toEqual(Object.fromEntries(Object.entries(kept).map(([name, content]) => [name, createHash('sha256').update(content).digest('hex')])));
  });

  test('a path the engine does not have is null and makes no file; a refusal or an answer cut short fails the part with what happened', async () => {
    engine.answer = (socket) => socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}');
    expect(await fromEngine(path.join(dir, 'missing.age'))).toBeNull();
    expect(fs.existsSync(path.join(dir, 'missing.age'))).toBe(false);
    const said = '{"message":"container helper is being removed"}';
    engine.answer = (socket) => socket.end(`HTTP/1.1 409 Conflict\r\nContent-Length: ${said.length}\r\n\r\n${said}`);
    await expect(fromEngine(path.join(dir, 'refused.age'))).rejects.toThrow('container helper is being removed');
    const tar = await volumeTar({ '.openclaw/workspace/a.bin': randomBytes(2 * 1024 * 1024) });
    engine.answer = (socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${tar.length}\r\n\r\n`);
      socket.end(tar.subarray(0, 1024 * 1024));
    };
    await expect(fromEngine(path.join(dir, 'cut.age'))).rejects.toThrow('before its end');
    expect(fs.readdirSync(dir).filter((name) => name.endsWith('.age'))).toEqual([]);
    // The worker goes on with the next part.
    engine.answer = (socket) => writeChunked(socket, tar, [64 * 1024]);
    expect((await fromEngine(path.join(dir, 'next.age')))?.plainBytes).toBe(tar.length);
  });

  test('a stop ends the read with its reason, hangs up on the engine, leaves no file, and the worker goes on', async () => {
    // A tar entry that never ends: its header, then contents for as long as they are read.
    const header = pack();
    header.entry({ name: '.openclaw/endless.bin', size: 1024 ** 4 }, () => undefined);
    const first = await new Promise<Buffer>((resolve) => header.once('data', (data: unknown) => resolve(data as Buffer)));
    const endless = endlessAnswer(first);
    engine.answer = endless.answer;
    const stop = new AbortController();
    const sealing = fromEngine(path.join(dir, 'stopped.age'), stop.signal);
    // Once the worker has written some of it.
    while (!fs.existsSync(path.join(dir, 'stopped.age')) || fs.statSync(path.join(dir, 'stopped.age')).size < 1024 * 1024) await new Promise((resolve) => setTimeout(resolve, 20));
    stop.abort(new Error('the workspace is being removed'));
    await expect(sealing).rejects.toThrow('the workspace is being removed');
    await endless.hungUp;
    expect(fs.existsSync(path.join(dir, 'stopped.age'))).toBe(false);
    const next = randomBytes(1024 * 1024);
    expect((await writePart(Readable.from([next]), path.join(dir, 'next.age'), key.identity.publicRaw)).plainBytes).toBe(next.length);
  });
});
