import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import { extract, pack, type Header } from 'tar-stream';
import { AGENT_RUN_FLAG, spawnAgent, type AgentRunner } from '../../src/files/agent/agentRunner';
import { MAX_SCRIPT_BYTES } from '../../src/files/agent/build';
import { FILES_AUTH_HEADER, filesKeyFrom, RequestVerifier, signRequest, SIGNATURE_WINDOW_MS } from '../../src/files/agent/requestSigning';
import { createFileServer, type FileServerOptions } from '../../src/files/agent/server';
import { fileServerScript } from '../../src/files/agentScript';
import { bundleRefusal, startBundle } from '../support/bundledServer';
import { eventually } from '../support/eventually';

/**
 * The file server that runs beside a workspace volume (src/files/agent/server.ts): in-process on
 * a temporary folder laid out like a volume (`<tmp>/volume` is its root, `<tmp>/outside` stands
 * for everything else), with its agent runs in real child processes of the bundle built from the
 * sources; and once as the bundle itself (`node -e <bundle>`), the way a files container starts it.
 */

type HeaderIn = Partial<Header> & Pick<Header, 'name'>;
interface EntryIn {
  header: HeaderIn;
  content?: string | Buffer;
}
interface EntryOut {
  header: Header;
  content: Buffer;
}
interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

const KEY = Buffer.from(randomBytes(32).toString('hex'));
const MTIME = new Date('2024-05-06T07:08:09Z');

let bundle: string;
let tmp: string;
let root: string;
let outside: string;
let servers: http.Server[] = [];

beforeAll(async () => {
  bundle = await fileServerScript();
});

beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'file-server-'));
  root = path.join(tmp, 'volume');
  outside = path.join(tmp, 'outside');
  fs.mkdirSync(path.join(root, 'workspace'), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'secret'), 'secret');
});

afterEach(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  servers = [];
  // A test may have left folders their owner cannot write to.
  for (const dir of foldersUnder(tmp)) fs.chmodSync(dir, 0o700);
  fs.rmSync(tmp, { recursive: true, force: true });
});

function foldersUnder(dir: string): string[] {
  const out = [dir];
  fs.chmodSync(dir, 0o700);
  for (const d of fs.readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) out.push(...foldersUnder(path.join(dir, d.name)));
  return out;
}

/** The agent as the server runs it in production: the bundle started again with the agent flag. */
const bundleAgent = (): AgentRunner => spawnAgent({ file: process.execPath, args: ['-e', bundle, '--', AGENT_RUN_FLAG] });

async function startServer(overrides: Partial<FileServerOptions> = {}): Promise<number> {
  const server = createFileServer({ root, key: KEY, agent: bundleAgent(), log: () => undefined, ...overrides });
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return (server.address() as net.AddressInfo).port;
}

interface CallOptions {
  body?: Buffer | string | Readable;
  /** false: unsigned; a Buffer: signed with that key; a string: that header value. */
  sign?: false | Buffer | string;
  signedAt?: number;
}

function call(port: number, method: string, target: string, options: CallOptions = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  const sign = options.sign ?? KEY;
  if (typeof sign === 'string') headers[FILES_AUTH_HEADER] = sign;
  else if (sign) headers[FILES_AUTH_HEADER] = signRequest(sign, method, target, options.signedAt ?? Date.now());
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: target, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    // An early answer (a refusal) may close the connection while the body is still going out.
    req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err)));
    const { body } = options;
    if (body === undefined) req.end();
    else if (typeof body === 'string' || Buffer.isBuffer(body)) req.end(body);
    else body.pipe(req);
  });
}

const q = (p: string) => encodeURIComponent(p);
const putArchive = (port: number, dir: string, archive: Buffer) => call(port, 'PUT', `/archive?dir=${q(dir)}`, { body: archive });
const getArchive = (port: number, p: string) => call(port, 'GET', `/archive?path=${q(p)}`);
const errorOf = (answer: Answer): { code: string; message: string } => (JSON.parse(answer.body.toString('utf8')) as { error: { code: string; message: string } }).error;

async function tarOf(entries: EntryIn[]): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  archive.on('data', (c: unknown) => chunks.push(c as Buffer));
  const ended = once(archive, 'end');
  for (const { header, content } of entries) {
    await new Promise<void>((resolve, reject) => {
      const done = (err?: Error | null) => (err ? reject(err) : resolve());
      if (content === undefined) archive.entry({ mtime: MTIME, ...header }, done);
      else archive.entry({ mtime: MTIME, ...header }, content, done);
    });
  }
  archive.finalize();
  await ended;
  return Buffer.concat(chunks);
}

async function untar(archive: Buffer): Promise<EntryOut[]> {
  const out: EntryOut[] = [];
  const reader = extract();
  const done = new Promise<void>((resolve, reject) => {
    reader.on('entry', (header, stream, next) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: unknown) => chunks.push(c as Buffer));
      stream.on('end', () => {
        out.push({ header, content: Buffer.concat(chunks) });
        next();
      });
    });
    reader.on('finish', resolve);
    reader.on('error', reject);
  });
  reader.end(archive);
  await done;
  return out;
}

const file = (name: string, content: string, mode = 0o644): EntryIn => ({ header: { name, type: 'file', mode }, content });
const folder = (name: string, mode = 0o755): EntryIn => ({ header: { name, type: 'directory', mode } });
const symlink = (name: string, target: string): EntryIn => ({ header: { name, type: 'symlink', linkname: target } });
const hardlink = (name: string, target: string): EntryIn => ({ header: { name, type: 'link', linkname: target } });
const modeOf = (p: string) => fs.lstatSync(p).mode & 0o7777;
const outsideIsUntouched = () => expect(fs.readdirSync(outside)).toEqual(['secret']);

describe('request signing', () => {
  const method = 'GET';
  const url = '/archive?path=%2Fx';

  it('accepts a fresh signature once, and refuses it replayed', () => {
    const verifier = new RequestVerifier(KEY);
    const header = signRequest(KEY, method, url, Date.now());
    expect(header).toMatch(/^\d+\.[0-9a-f]{32}\.[0-9a-f]{64}$/);
    expect(verifier.verify(method, url, header)).toBe('ok');
    expect(verifier.verify(method, url, header)).toBe('replayed');
  });

  it('refuses another key, another request, a stale or future stamp, and what is not a signature', () => {
    const now = 1_000_000_000_000;
    const verifier = new RequestVerifier(KEY, { now: () => now });
    expect(verifier.verify(method, url, signRequest(Buffer.from('k'.repeat(32)), method, url, now))).toBe('bad-signature');
    expect(verifier.verify(method, '/archive?path=%2Fy', signRequest(KEY, method, url, now))).toBe('bad-signature');
    expect(verifier.verify('PUT', url, signRequest(KEY, method, url, now))).toBe('bad-signature');
    expect(verifier.verify(method, url, signRequest(KEY, method, url, now - SIGNATURE_WINDOW_MS - 1))).toBe('stale');
    expect(verifier.verify(method, url, signRequest(KEY, method, url, now + SIGNATURE_WINDOW_MS + 1))).toBe('stale');
    expect(verifier.verify(method, url, signRequest(KEY, method, url, now - SIGNATURE_WINDOW_MS))).toBe('ok');
    expect(verifier.verify(method, url, undefined)).toBe('missing');
    expect(verifier.verify(method, url, 'nonsense')).toBe('malformed');
    expect(verifier.verify(method, url, [signRequest(KEY, method, url, now)])).toBe('malformed');
  });

  it('remembers a bounded number of nonces: refuses when full, forgets those out of the window', () => {
    let now = 1_000_000_000_000;
    const verifier = new RequestVerifier(KEY, { now: () => now }, 3);
    for (let i = 0; i < 3; i++) expect(verifier.verify(method, url, signRequest(KEY, method, url, now))).toBe('ok');
    expect(verifier.verify(method, url, signRequest(KEY, method, url, now))).toBe('too-many-requests');
    expect(verifier.remembered).toBe(3);
    now += SIGNATURE_WINDOW_MS + 1;
    expect(verifier.verify(method, url, signRequest(KEY, method, url, now))).toBe('ok');
    expect(verifier.remembered).toBe(1);
  });

  it('takes the key from a key file without its surrounding white space, and refuses short keys', () => {
    expect(filesKeyFrom(`${KEY.toString()}\n`).equals(KEY)).toBe(true);
    expect(() => filesKeyFrom('short\n')).toThrow(/at least 32 bytes/);
    expect(() => new RequestVerifier(Buffer.from('short'))).toThrow(/at least 32 bytes/);
  });
});

describe('file server', () => {
  it('answers its health check without a signature', async () => {
    const port = await startServer();
    const answer = await call(port, 'GET', '/healthz', { sign: false });
    expect(answer.status).toBe(200);
    expect(answer.body.toString()).toBe('ok');
  });

  it('refuses unsigned, wrongly signed, replayed and stale requests with 401, and writes nothing', async () => {
    const port = await startServer();
    fs.writeFileSync(path.join(root, 'workspace', 'a.txt'), 'a');
    const target = `/archive?path=${q(path.join(root, 'workspace', 'a.txt'))}`;
    const archive = await tarOf([file('written.txt', 'no')]);
    const putTarget = `/archive?dir=${q(path.join(root, 'workspace'))}`;

    const refusals = [
      await call(port, 'GET', target, { sign: false }),
      await call(port, 'GET', target, { sign: Buffer.from('x'.repeat(64)) }),
      await call(port, 'GET', target, { signedAt: Date.now() - SIGNATURE_WINDOW_MS - 5_000 }),
      await call(port, 'GET', target, { sign: signRequest(KEY, 'GET', '/archive?path=%2F', Date.now()) }),
      await call(port, 'PUT', putTarget, { sign: false, body: archive }),
      await call(port, 'POST', '/agent', { sign: false, body: JSON.stringify({ op: 'usage', root }) }),
    ];
    const replayed = signRequest(KEY, 'GET', target, Date.now());
    expect((await call(port, 'GET', target, { sign: replayed })).status).toBe(200);
    refusals.push(await call(port, 'GET', target, { sign: replayed }));

    for (const answer of refusals) {
      expect(answer.status).toBe(401);
      expect(answer.headers['content-type']).toMatch(/application\/json/);
      expect(errorOf(answer).code).toBe('UNAUTHORIZED');
    }
    expect(errorOf(refusals[refusals.length - 1] as Answer).message).toMatch(/replayed/);
    expect(fs.existsSync(path.join(root, 'workspace', 'written.txt'))).toBe(false);
  });

  it('answers unknown endpoints and methods with JSON errors', async () => {
    const port = await startServer();
    const missing = await call(port, 'GET', '/nothing');
    expect(missing.status).toBe(404);
    expect(errorOf(missing).code).toBe('NOT_FOUND');
    const wrong = await call(port, 'DELETE', '/archive?path=%2F');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe('GET, PUT');
  });

  it('writes an archive and reads it back: files, folders, links, modes, long and unicode names', async () => {
    const port = await startServer();
    const longName = `dir/${'a'.repeat(150)}.txt`;
    const deepName = `dir/deep/${'b'.repeat(60)}/${'c'.repeat(60)}/f.txt`;
    const unicodeName = 'dir/ünïcødé 名前.txt';
    const longTarget = `${'../'.repeat(10)}${'t'.repeat(100)}`;
    const archive = await tarOf([
      folder('dir', 0o750),
      folder('dir/empty', 0o700),
      file('dir/file.txt', 'hello', 0o640),
      file('dir/run.sh', '#!/bin/sh\n', 0o755),
      file('dir/setuid', 'x', 0o4755),
      symlink('dir/link', 'file.txt'),
      symlink('dir/far', longTarget),
      hardlink('dir/hard', 'dir/file.txt'),
      file(unicodeName, 'unicode'),
      file(longName, 'long'),
      file(deepName, 'deep'),
    ]);
    const dest = path.join(root, 'workspace');
    const put = await putArchive(port, dest, archive);
    expect(put.status).toBe(204);

    const dir = path.join(dest, 'dir');
    expect(fs.readFileSync(path.join(dir, 'file.txt'), 'utf8')).toBe('hello');
    expect(modeOf(dir)).toBe(0o750);
    expect(modeOf(path.join(dir, 'empty'))).toBe(0o700);
    expect(modeOf(path.join(dir, 'file.txt'))).toBe(0o640);
    expect(modeOf(path.join(dir, 'run.sh'))).toBe(0o755);
    expect(modeOf(path.join(dir, 'setuid'))).toBe(0o755);
    expect(fs.readlinkSync(path.join(dir, 'link'))).toBe('file.txt');
    expect(fs.readlinkSync(path.join(dir, 'far'))).toBe(longTarget);
    expect(fs.statSync(path.join(dir, 'hard')).ino).toBe(fs.statSync(path.join(dir, 'file.txt')).ino);
    expect(fs.readFileSync(path.join(dest, unicodeName), 'utf8')).toBe('unicode');
    expect(fs.readFileSync(path.join(dest, longName), 'utf8')).toBe('long');
    expect(fs.readFileSync(path.join(dest, deepName), 'utf8')).toBe('deep');
    expect(fs.statSync(path.join(dir, 'file.txt')).mtime.getTime()).toBe(MTIME.getTime());
    expect(fs.statSync(dir).mtime.getTime()).toBe(MTIME.getTime());

    const got = await getArchive(port, dir);
    expect(got.status).toBe(200);
    expect(got.headers['content-type']).toBe('application/x-tar');
    const entries = await untar(got.body);
    const byName = new Map(entries.map((e) => [e.header.name.replace(/\/$/, ''), e]));
    expect([...byName.keys()].sort()).toEqual(
      ['dir', 'dir/deep', `dir/deep/${'b'.repeat(60)}`, `dir/deep/${'b'.repeat(60)}/${'c'.repeat(60)}`, deepName, 'dir/empty', 'dir/far', 'dir/file.txt', 'dir/hard', 'dir/link', 'dir/run.sh', 'dir/setuid', longName, unicodeName].sort(),
    );
    expect(entries[0]?.header).toMatchObject({ name: 'dir/', type: 'directory', mode: 0o750 });
    expect(byName.get('dir/empty')?.header).toMatchObject({ type: 'directory', mode: 0o700 });
    expect(byName.get('dir/file.txt')?.header).toMatchObject({ type: 'file', mode: 0o640, size: 5 });
    expect(byName.get('dir/file.txt')?.header.mtime.getTime()).toBe(MTIME.getTime());
    expect(byName.get('dir/file.txt')?.content.toString()).toBe('hello');
    expect(byName.get('dir/hard')?.header).toMatchObject({ type: 'link', linkname: 'dir/file.txt', size: 0 });
    expect(byName.get('dir/link')?.header).toMatchObject({ type: 'symlink', linkname: 'file.txt' });
    expect(byName.get('dir/far')?.header).toMatchObject({ type: 'symlink', linkname: longTarget });
    expect(byName.get('dir/run.sh')?.header.mode).toBe(0o755);
    expect(byName.get(unicodeName)?.content.toString()).toBe('unicode');
    expect(byName.get(longName)?.content.toString()).toBe('long');
    expect(byName.get(deepName)?.content.toString()).toBe('deep');
    // A name that cannot be split into the ustar prefix and name fields needs a PAX record.
    expect(got.body.includes(Buffer.from(`path=${longName}`))).toBe(true);

    // What a read gives, a write takes: the same tree again elsewhere.
    fs.mkdirSync(path.join(root, 'copy'));
    expect((await putArchive(port, path.join(root, 'copy'), got.body)).status).toBe(204);
    expect(fs.statSync(path.join(root, 'copy', 'dir', 'hard')).ino).toBe(fs.statSync(path.join(root, 'copy', 'dir', 'file.txt')).ino);
    expect(fs.readFileSync(path.join(root, 'copy', longName), 'utf8')).toBe('long');
    expect(modeOf(path.join(root, 'copy', 'dir'))).toBe(0o750);
  });

  it('replaces whatever is at an entry\'s path, never following a symlink there', async () => {
    const port = await startServer();
    const dest = path.join(root, 'workspace');
    fs.mkdirSync(path.join(dest, 'was-folder', 'sub'), { recursive: true });
    fs.writeFileSync(path.join(dest, 'was-folder', 'sub', 'x'), 'x');
    fs.chmodSync(path.join(dest, 'was-folder', 'sub'), 0o500);
    fs.writeFileSync(path.join(dest, 'was-file'), 'old');
    fs.symlinkSync(path.join(outside, 'secret'), path.join(dest, 'was-link'));
    fs.mkdirSync(path.join(dest, 'merged'));
    fs.writeFileSync(path.join(dest, 'merged', 'kept'), 'kept');

    const archive = await tarOf([file('was-folder', 'now a file'), folder('was-file'), file('was-link', 'now a file'), folder('merged', 0o700), file('merged/new', 'new')]);
    expect((await putArchive(port, dest, archive)).status).toBe(204);
    expect(fs.readFileSync(path.join(dest, 'was-folder'), 'utf8')).toBe('now a file');
    expect(fs.lstatSync(path.join(dest, 'was-file')).isDirectory()).toBe(true);
    expect(fs.lstatSync(path.join(dest, 'was-link')).isFile()).toBe(true);
    expect(fs.readFileSync(path.join(outside, 'secret'), 'utf8')).toBe('secret');
    expect(fs.readdirSync(path.join(dest, 'merged')).sort()).toEqual(['kept', 'new']);
    expect(modeOf(path.join(dest, 'merged'))).toBe(0o700);
  });

  it('fills a read-only folder of the archive, and gives it its mode at the end', async () => {
    const port = await startServer();
    const dest = path.join(root, 'workspace');
    const archive = await tarOf([folder('ro', 0o555), file('ro/inside.txt', 'in', 0o444)]);
    expect((await putArchive(port, dest, archive)).status).toBe(204);
    expect(fs.readFileSync(path.join(dest, 'ro', 'inside.txt'), 'utf8')).toBe('in');
    expect(modeOf(path.join(dest, 'ro'))).toBe(0o555);
    expect(modeOf(path.join(dest, 'ro', 'inside.txt'))).toBe(0o444);
  });

  it.each([
    ['a ".." component', [file('../escaped', 'x')], 'PATH_TRAVERSAL'],
    ['an absolute name', [] as EntryIn[], 'ABSOLUTE_NAME'],
    ['a symlinked parent', [file('to-outside/x', 'x')], 'SYMLINK_IN_PATH'],
    ['a parent the archive itself made a symlink', [symlink('made', '../../outside'), file('made/x', 'x')], 'SYMLINK_IN_PATH'],
    ['a hard link to outside', [hardlink('stolen', '../../outside/secret')], 'PATH_TRAVERSAL'],
    ['a hard link through a symlink', [hardlink('stolen', 'to-outside/secret')], 'SYMLINK_IN_PATH'],
    ['an absolute hard link', [] as EntryIn[], 'ABSOLUTE_NAME'],
    ['a device', [{ header: { name: 'dev', type: 'character-device' } }] as EntryIn[], 'UNSUPPORTED_ENTRY'],
  ])('refuses %s with 400 and writes nothing outside, nor anything after it', async (what, entries, code) => {
    const port = await startServer();
    const dest = path.join(root, 'workspace');
    fs.symlinkSync(outside, path.join(dest, 'to-outside'));
    let list = entries;
    if (what === 'an absolute name') list = [file(path.join(outside, 'x'), 'x')];
    if (what === 'an absolute hard link') list = [hardlink('stolen', path.join(outside, 'secret'))];
    const archive = await tarOf([file('before', 'b'), ...list, file('after', 'a')]);
    const answer = await putArchive(port, dest, archive);
    expect(answer.status).toBe(400);
    expect(errorOf(answer).code).toBe(code);
    outsideIsUntouched();
    expect(fs.existsSync(path.join(tmp, 'escaped'))).toBe(false);
    expect(fs.existsSync(path.join(dest, 'before'))).toBe(true);
    expect(fs.existsSync(path.join(dest, 'after'))).toBe(false);
    expect(fs.existsSync(path.join(dest, 'stolen'))).toBe(false);
  });

  it('answers a refusal without waiting for the rest of a large body', async () => {
    const port = await startServer();
    const dest = path.join(root, 'workspace');
    const head = await tarOf([file('../escaped', 'x')]);
    // 64 MiB of a body that never ends unless the server reads it: the answer comes first.
    const body = new PassThrough();
    body.write(head.subarray(0, head.length - 1024));
    const chunk = Buffer.alloc(1024 * 1024);
    let sent = 0;
    const feed = () => {
      while (sent < 64 && !body.destroyed) {
        sent++;
        if (!body.write(chunk)) return void body.once('drain', feed);
      }
    };
    feed();
    const answer = await call(port, 'PUT', `/archive?dir=${q(dest)}`, { body });
    body.destroy();
    expect(answer.status).toBe(400);
    expect(answer.headers.connection).toBe('close');
    expect(errorOf(answer).code).toBe('PATH_TRAVERSAL');
    expect(fs.existsSync(path.join(tmp, 'escaped'))).toBe(false);
  });

  it('refuses a folder outside the root, also through a symlink, and a missing one', async () => {
    const port = await startServer();
    fs.symlinkSync(outside, path.join(root, 'workspace', 'to-outside'));
    const archive = await tarOf([file('x', 'x')]);
    for (const dir of [outside, path.join(root, 'workspace', 'to-outside'), path.join(root, '..', 'outside'), tmp]) {
      const answer = await putArchive(port, dir, archive);
      expect(answer.status).toBe(400);
      expect(errorOf(answer).code).toBe('PATH_OUTSIDE_ROOT');
    }
    const missing = await putArchive(port, path.join(root, 'nowhere'), archive);
    expect(missing.status).toBe(404);
    const relative = await call(port, 'PUT', '/archive?dir=workspace', { body: archive });
    expect(relative.status).toBe(400);
    expect(errorOf(relative).code).toBe('INVALID_PATH');
    outsideIsUntouched();
  });

  it('refuses a broken archive with 400', async () => {
    const port = await startServer();
    const archive = await tarOf([file('big', 'x'.repeat(10_000))]);
    const answer = await putArchive(port, path.join(root, 'workspace'), archive.subarray(0, 2048));
    expect(answer.status).toBe(400);
    expect(errorOf(answer).code).toBe('INVALID_ARCHIVE');
    expect(fs.existsSync(path.join(root, 'workspace', 'big'))).toBe(false);
  });

  it('answers 404 for a missing path, 400 outside the root, and reads a symlink as a symlink', async () => {
    const port = await startServer();
    const ws = path.join(root, 'workspace');
    fs.symlinkSync(path.join(outside, 'secret'), path.join(ws, 'link'));
    fs.symlinkSync(outside, path.join(ws, 'to-outside'));

    const missing = await getArchive(port, path.join(ws, 'nothing'));
    expect(missing.status).toBe(404);
    expect(errorOf(missing).code).toBe('NOT_FOUND');
    expect((await getArchive(port, path.join(ws, 'nothing', 'deeper'))).status).toBe(404);

    for (const p of [path.join(outside, 'secret'), path.join(ws, 'to-outside', 'secret'), tmp]) {
      const answer = await getArchive(port, p);
      expect(answer.status).toBe(400);
      expect(errorOf(answer).code).toBe('PATH_OUTSIDE_ROOT');
    }

    const link = await getArchive(port, path.join(ws, 'link'));
    expect(link.status).toBe(200);
    const entries = await untar(link.body);
    expect(entries).toHaveLength(1);
    expect(entries[0]?.header).toMatchObject({ name: 'link', type: 'symlink', linkname: path.join(outside, 'secret'), size: 0 });

    // A symlink to outside inside a folder that is read: the link, not what it leads to.
    const folderRead = await untar((await getArchive(port, ws)).body);
    expect(folderRead.map((e) => [e.header.name, e.header.type])).toEqual([
      ['workspace/', 'directory'],
      ['workspace/link', 'symlink'],
      ['workspace/to-outside', 'symlink'],
    ]);
  });

  it('reads the root itself, named by its base name', async () => {
    const port = await startServer();
    fs.writeFileSync(path.join(root, 'workspace', 'a.txt'), 'a');
    const entries = await untar((await getArchive(port, root)).body);
    expect(entries.map((e) => e.header.name)).toEqual(['volume/', 'volume/workspace/', 'volume/workspace/a.txt']);
  });

  it('runs the agent in a child process: list', async () => {
    const port = await startServer();
    fs.writeFileSync(path.join(root, 'workspace', 'a.txt'), 'hello');
    const answer = await call(port, 'POST', '/agent?maxOutputBytes=100000&timeoutMs=60000', { body: JSON.stringify({ op: 'list', root: path.join(root, 'workspace'), path: '' }) });
    expect(answer.status).toBe(200);
    const run = JSON.parse(answer.body.toString()) as { exitCode: number; stdout: string; stderr: string };
    expect(run.exitCode).toBe(0);
    const response = JSON.parse(run.stdout) as { ok: boolean; result: { entries: { name: string; type: string; size: number }[] } };
    expect(response.ok).toBe(true);
    expect(response.result.entries).toEqual([expect.objectContaining({ name: 'a.txt', type: 'file', size: 5 })]);
  });

  it('stops an agent run that writes too much (413) or runs too long (504)', async () => {
    const port = await startServer();
    fs.writeFileSync(path.join(root, 'workspace', 'a.txt'), 'hello');
    const list = JSON.stringify({ op: 'list', root: path.join(root, 'workspace'), path: '' });
    const tooMuch = await call(port, 'POST', '/agent?maxOutputBytes=10', { body: list });
    expect(tooMuch.status).toBe(413);
    expect(errorOf(tooMuch).code).toBe('OUTPUT_TOO_LARGE');

    const hangingPort = await startServer({ agent: spawnAgent({ file: process.execPath, args: ['-e', 'setInterval(() => {}, 1 << 30)'] }) });
    const slow = await call(hangingPort, 'POST', '/agent?timeoutMs=200', { body: list });
    expect(slow.status).toBe(504);
    expect(errorOf(slow).code).toBe('AGENT_TIMEOUT');
  });

  it('reports a child killed by a signal the way docker exec does (128 + signal)', async () => {
    const killed = spawnAgent({ file: process.execPath, args: ['-e', 'process.kill(process.pid, "SIGKILL")'] });
    await expect(killed('{}', { maxOutputBytes: 1000, timeoutMs: 60_000 })).resolves.toMatchObject({ exitCode: 137 });
  });

  it('refuses agent requests that are not JSON, too large, name folders outside the root, or ask for silly limits', async () => {
    const port = await startServer();
    const notJson = await call(port, 'POST', '/agent', { body: 'nope' });
    expect([notJson.status, errorOf(notJson).code]).toEqual([400, 'INVALID_REQUEST']);
    const outsideRoot = await call(port, 'POST', '/agent', { body: JSON.stringify({ op: 'list', root: outside, path: '' }) });
    expect([outsideRoot.status, errorOf(outsideRoot).code]).toEqual([400, 'PATH_OUTSIDE_ROOT']);
    const sneaky = await call(port, 'POST', '/agent', { body: JSON.stringify({ op: 'discard', staging: `${root}/../outside` }) });
    expect([sneaky.status, errorOf(sneaky).code]).toEqual([400, 'PATH_OUTSIDE_ROOT']);
    const large = await call(port, 'POST', '/agent', { body: 'x'.repeat(1024 * 1024 + 1) });
    expect([large.status, errorOf(large).code]).toEqual([413, 'REQUEST_TOO_LARGE']);
    const limits = await call(port, 'POST', '/agent?timeoutMs=-1', { body: '{}' });
    expect([limits.status, errorOf(limits).code]).toEqual([400, 'INVALID_LIMITS']);
  });

  it('runs a bounded number of agents at once and queues a bounded number more (503 beyond)', async () => {
    const started: (() => void)[] = [];
    const agent: AgentRunner = () => new Promise((resolve) => started.push(() => resolve({ exitCode: 0, stdout: '{}', stderr: '' })));
    const port = await startServer({ agent, maxAgentRuns: 2, maxAgentWaiting: 1 });
    const body = JSON.stringify({ op: 'usage', root });
    const running = [call(port, 'POST', '/agent', { body }), call(port, 'POST', '/agent', { body })];
    await eventually(() => (started.length === 2 ? true : undefined), 'two agent runs', 5_000, 10);
    // Two more: one waits its turn, the other finds the queue full (whichever arrives second).
    const more = [call(port, 'POST', '/agent', { body }), call(port, 'POST', '/agent', { body })];
    const busy = await Promise.race(more);
    expect(busy.status).toBe(503);
    expect(errorOf(busy).code).toBe('AGENT_BUSY');
    expect(started).toHaveLength(2);
    started.splice(0).forEach((finish) => finish());
    await eventually(() => (started.length === 1 ? true : undefined), 'the waiting run to start', 5_000, 10);
    started.splice(0).forEach((finish) => finish());
    const statuses = (await Promise.all([...running, ...more])).map((answer) => answer.status);
    expect(statuses.sort()).toEqual([200, 200, 200, 503]);
  });

  it('serves at most 8 archive streams at once: the 9th gets 503 while 8 are held open', async () => {
    const port = await startServer();
    // A sparse GiB: more than any socket buffers hold, so an unread download stays open.
    fs.mkdirSync(path.join(root, 'big'));
    fs.writeFileSync(path.join(root, 'big', 'zeros'), '');
    fs.truncateSync(path.join(root, 'big', 'zeros'), 1024 ** 3);
    const target = `/archive?path=${q(path.join(root, 'big'))}`;
    const held: http.ClientRequest[] = [];
    const open = () =>
      new Promise<http.IncomingMessage>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: target, headers: { [FILES_AUTH_HEADER]: signRequest(KEY, 'GET', target, Date.now()) }, agent: false }, (res) => {
          res.pause();
          resolve(res);
        });
        req.on('error', reject);
        req.end();
        held.push(req);
      });
    const responses = await Promise.all(Array.from({ length: 8 }, open));
    expect(responses.map((r) => r.statusCode)).toEqual(Array(8).fill(200));

    const ninth = await getArchive(port, path.join(root, 'workspace'));
    expect(ninth.status).toBe(503);
    expect(errorOf(ninth).code).toBe('TOO_MANY_STREAMS');
    const ninthPut = await putArchive(port, path.join(root, 'workspace'), await tarOf([file('x', 'x')]));
    expect(ninthPut.status).toBe(503);

    for (const req of held) req.destroy();
    const after = await eventually(async () => {
      const answer = await getArchive(port, path.join(root, 'workspace'));
      return answer.status === 200 ? answer : undefined;
    }, 'a free stream slot', 10_000, 20);
    expect(after.status).toBe(200);
  });

  it('closes and removes the file being written when the client goes away mid-stream', async () => {
    const port = await startServer();
    const dest = path.join(root, 'workspace');
    const target = `/archive?dir=${q(dest)}`;
    const header = (await tarOf([{ header: { name: 'partial', type: 'file', size: 10 * 1024 * 1024, mode: 0o644 }, content: Buffer.alloc(10 * 1024 * 1024) }])).subarray(0, 512);
    const before = await tarOf([file('complete', 'done')]);
    const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: target, headers: { [FILES_AUTH_HEADER]: signRequest(KEY, 'PUT', target, Date.now()) }, agent: false });
    req.on('error', () => undefined);
    // The first entry whole (without the end of the archive), then the start of a big file.
    req.write(before.subarray(0, 1024));
    req.write(header);
    req.write(Buffer.alloc(64 * 1024, 1));
    await eventually(() => (fs.existsSync(path.join(dest, 'partial')) && fs.statSync(path.join(dest, 'partial')).size > 0 ? true : undefined), 'the partial file', 10_000, 10);
    req.destroy();

    const partial = path.join(dest, 'partial');
    const openFds = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith(partial);
      } catch {
        return false;
      }
    });
    await eventually(() => (!fs.existsSync(partial) && openFds().length === 0 ? true : undefined), 'the partial file to be closed and removed', 10_000, 10);
    expect(fs.readFileSync(path.join(dest, 'complete'), 'utf8')).toBe('done');
  });
});

describe('file server bundle', () => {
  let proc: ChildProcess | null = null;

  afterEach(async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = once(proc, 'exit');
      proc.kill('SIGTERM');
      await exited;
    }
    proc = null;
  });

  async function freePort(): Promise<number> {
    const probe = net.createServer();
    probe.listen(0, '127.0.0.1');
    await once(probe, 'listening');
    const { port } = probe.address() as net.AddressInfo;
    await new Promise((resolve) => probe.close(resolve));
    return port;
  }

  it('fits in one command-line argument', () => {
    expect(Buffer.byteLength(bundle)).toBeLessThanOrEqual(MAX_SCRIPT_BYTES);
  });

  it('starts as `node -e <bundle>` from its environment and runs agent requests as `--agent-run` children', async () => {
    const keyFile = path.join(tmp, 'key');
    fs.writeFileSync(keyFile, `${KEY.toString()}\n`, { mode: 0o600 });
    fs.writeFileSync(path.join(root, 'workspace', 'a.txt'), 'hello');
    const port = await freePort();
    const child = await startBundle(bundle, { CLAWLOOPS_FILES_ROOT: root, CLAWLOOPS_FILES_KEY_FILE: keyFile, CLAWLOOPS_FILES_PORT: String(port) });
    proc = child;

    expect((await call(port, 'GET', '/healthz', { sign: false })).body.toString()).toBe('ok');
    const unsigned = await call(port, 'POST', '/agent', { sign: false, body: '{}' });
    expect(unsigned.status).toBe(401);

    const answer = await call(port, 'POST', '/agent', { body: JSON.stringify({ op: 'list', root: path.join(root, 'workspace'), path: '' }) });
    expect(answer.status).toBe(200);
    const run = JSON.parse(answer.body.toString()) as { exitCode: number; stdout: string };
    expect(run.exitCode).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ ok: true, result: { entries: [{ name: 'a.txt', type: 'file', size: 5 }] } });

    expect((await putArchive(port, path.join(root, 'workspace'), await tarOf([file('b.txt', 'bee')]))).status).toBe(204);
    const entries = await untar((await getArchive(port, path.join(root, 'workspace', 'b.txt'))).body);
    expect(entries.map((e) => [e.header.name, e.content.toString()])).toEqual([['b.txt', 'bee']]);

    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    expect((await exited)[0]).toBe(0);
  });

  it('refuses to start without a usable key', async () => {
    const keyFile = path.join(tmp, 'short-key');
    fs.writeFileSync(keyFile, 'short\n');
    const { code, stderr } = await bundleRefusal(bundle, { CLAWLOOPS_FILES_ROOT: root, CLAWLOOPS_FILES_KEY_FILE: keyFile, CLAWLOOPS_FILES_PORT: String(await freePort()) });
    expect(code).toBe(1);
    expect(stderr).toMatch(/at least 32 bytes/);
  });
});
