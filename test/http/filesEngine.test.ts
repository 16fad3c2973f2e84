/**
 * The file API over the workspace-volume port, with a fake of that port
 * (test/support/fakeWorkspaceVolumes.ts): how the API answers when the engine cannot be reached,
 * when a runtime changes under an operation, and when the volume cannot be reached for a lasting
 * reason. The real engine's behaviour is test/integration's (workspaceFiles, fileEngineDown).
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { extract, pack, type Header } from 'tar-stream';
import type TestAgent from 'supertest/lib/agent';
import { NO_ORIGIN } from '../../src/domain/audit';
import { STAGING_DIR } from '../../src/files/staging';
import { TAR_END, tarHeader, tarPadding } from '../../src/files/tarFraming';
import { parseWorkspacePath } from '../../src/files/workspacePath';
import { infraNotFound } from '../../src/lib/infraErrors';
import { closeServer, servePlatform, signInCookie } from '../support/hostClient';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { FakeWorkspaceVolumes } from '../support/fakeWorkspaceVolumes';
import { createHarness, errorCode, STRONG_PASSWORD, type Harness } from '../support/harness';

let h: Harness;
let volumes: FakeWorkspaceVolumes;
let volumeDir: string;
let admin: TestAgent;
let adminId: string;

beforeEach(async () => {
  volumeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-volume-'));
  volumes = new FakeWorkspaceVolumes(volumeDir);
  h = createHarness({
    runtimeProvisioner: new FakeProvisioner(),
    runtimeProbe: alwaysReadyProbe,
    workspaceVolumes: volumes,
    files: { volumeRoot: volumeDir, root: path.join(volumeDir, 'workspace') },
  });
  ({ client: admin, userId: adminId } = await h.setupAdmin());
});

afterEach(() => {
  h.close();
  fs.rmSync(volumeDir, { recursive: true, force: true });
});

async function tarOf(name: string, content: string): Promise<Buffer> {
  const archive = pack();
  archive.entry({ name, type: 'file', size: Buffer.byteLength(content), mode: 0o644 }, content);
  archive.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of archive as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** Every file endpoint, each as one request (the admin's own files and another's through the admin routes). */
function everyFileRequest(client: TestAgent, tar: Buffer): [string, () => Promise<{ status: number; body: unknown; headers: Record<string, string> }>][] {
  return [
    ['list', () => client.get('/api/v1/files?path=')],
    ['usage', () => client.get('/api/v1/files/usage?fresh=1')],
    ['download', () => client.get('/api/v1/files/download?path=a.txt')],
    ['export', () => client.get('/api/v1/files/export')],
    ['read text', () => client.get('/api/v1/files/text?path=a.txt')],
    ['save text', () => client.put('/api/v1/files/text?path=b.txt').set('If-None-Match', '*').set('Content-Type', 'text/plain').send('hello')],
    ['mkdir', () => client.post('/api/v1/files/mkdir').send({ path: 'new' })],
    ['move', () => client.post('/api/v1/files/move').send({ from: 'a.txt', to: 'c.txt' })],
    ['delete', () => client.delete('/api/v1/files?path=a.txt')],
    ['upload', () => client.post('/api/v1/files/upload?path=').attach('files', Buffer.from('up'), { filename: 'up.txt' })],
    ['import', () => client.post('/api/v1/files/import?path=imported').attach('archive', tar, { filename: 'a.tar' })],
    ['admin list', () => client.get(`/api/v1/admin/users/${adminId}/files?path=`)],
  ];
}

describe('through the workspace-volume port', () => {
  test('upload, list, read and download work against the fake, and every access is released', async () => {
    const up = await admin.post('/api/v1/files/upload?path=docs').attach('files', Buffer.from('hello'), { filename: 'a.txt' });
    expect(up.status).toBe(201);
    const listed = await admin.get('/api/v1/files?path=docs');
    expect(listed.status).toBe(200);
    expect(listed.body.entries.map((e: { name: string; size: number }) => [e.name, e.size])).toEqual([['a.txt', 5]]);
    expect((await admin.get('/api/v1/files/text?path=docs/a.txt')).body.content).toBe('hello');
    const down = await admin.get('/api/v1/files/download?path=docs/a.txt');
    expect([down.status, down.text]).toEqual([200, 'hello']);
    expect(volumes.held).toBe(0);
  });
});

describe('an engine that cannot be reached', () => {
  test('every file endpoint answers 503 ENGINE_UNAVAILABLE naming the engine, with Retry-After', async () => {
    const tar = await tarOf('x.txt', 'x');
    expect((await admin.post('/api/v1/files/upload?path=').attach('files', Buffer.from('a'), { filename: 'a.txt' })).status).toBe(201);
    volumes.unreachable = true;
    for (const [what, send] of everyFileRequest(admin, tar)) {
      const res = await send();
      expect([what, res.status, errorCode(res)]).toEqual([what, 503, 'ENGINE_UNAVAILABLE']);
      expect([what, res.headers['retry-after']]).toEqual([what, '5']);
      expect((res.body as { error: { message: string } }).error.message).toMatch(/engine/i);
    }
    expect(volumes.held).toBe(0);
    expect(h.logs.text).not.toContain('unhandled error');
  });

  test('answers again as soon as the engine is back', async () => {
    volumes.unreachable = true;
    expect((await admin.get('/api/v1/files?path=')).status).toBe(503);
    volumes.unreachable = false;
    expect((await admin.get('/api/v1/files?path=')).status).toBe(200);
  });
});

describe('other faults of the port', () => {
  test('a runtime that changed under a command is tried once more with a fresh access', async () => {
    volumes.goneOnce = true;
    const res = await admin.post('/api/v1/files/mkdir').send({ path: 'made' });
    expect(res.status).toBe(201);
    expect(volumes.acquired.filter((a) => a.use === 'command')).toHaveLength(2);
    expect(fs.statSync(path.join(volumeDir, 'workspace', 'made')).isDirectory()).toBe(true);
  });

  test('a volume out of reach for a lasting reason is 503 FILES_UNAVAILABLE with the reason', async () => {
    volumes.refuseWith = infraNotFound('the runtime image is not on this host yet');
    const res = await admin.get('/api/v1/files?path=');
    expect([res.status, errorCode(res)]).toEqual([503, 'FILES_UNAVAILABLE']);
    expect(res.body.error.message).toContain('runtime image');
  });

  test('an access taken away during an upload (a purge, shutdown) ends it with 503 FILES_UNAVAILABLE and leaves no file', async () => {
    volumes.stallWrites = true;
    // The shutdown sweep takes every access away once the upload's write has begun.
    volumes.onWrite = () => void volumes.closeAll();
    const res = await admin.post('/api/v1/files/upload?path=').attach('files', Buffer.alloc(64 * 1024, 1), { filename: 'big.bin' });
    expect([res.status, errorCode(res)]).toEqual([503, 'FILES_UNAVAILABLE']);
    expect(res.body.error.message).toContain('taken offline');
    expect(fs.existsSync(path.join(volumeDir, 'workspace', 'big.bin'))).toBe(false);
    expect(volumes.held).toBe(0);
  });
});

/** The entries of a tar stream with their bodies (tar-stream reads it as the engine would). */
async function entriesOf(tar: Buffer): Promise<{ header: Header; body: Buffer }[]> {
  const reader = extract();
  const entries: { header: Header; body: Buffer }[] = [];
  reader.on('entry', (header, body, next) => {
    const chunks: Buffer[] = [];
    body.on('data', (c: unknown) => chunks.push(c as Buffer));
    body.on('end', () => {
      entries.push({ header, body: Buffer.concat(chunks) });
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    reader.on('finish', resolve);
    reader.on('error', reject);
    reader.end(tar);
  });
  return entries;
}

/** Every path under `dir`, relative to it. */
function treeOf(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

describe('text save: the shared staging writer frames it like every other write into the volume', () => {
  const padded = (n: number) => Math.ceil(n / 512) * 512;
  // The runtime makes its workspace folder when it first starts.
  beforeEach(() => fs.mkdirSync(path.join(volumeDir, 'workspace')));

  test("a text save's archive carries exactly the bytes announced: one file of the text's size owned by the runtime user, even when the text is itself a tar stream", async () => {
    // Text that is a tar entry a hostile member chose (root-owned, set-uid, outside staging): it must stay content.
    const evil = Buffer.from('#!/bin/sh\nid\n');
    const text = Buffer.concat([tarHeader({ name: 'workspace/evil', type: 'file', size: evil.length, mode: 0o4755, uid: 0, gid: 0, mtime: new Date() }), evil, tarPadding(evil.length), TAR_END]);
    const res = await admin.put('/api/v1/files/text?path=notes.txt').set('If-None-Match', '*').set('Content-Type', 'application/octet-stream').send(text);
    expect(res.status).toBe(200);
    expect(res.body.size).toBe(text.length);

    expect(volumes.archives).toHaveLength(1);
    const archive = Buffer.concat(volumes.archives[0] ?? []);
    const entries = await entriesOf(archive);
    const [stagingDir, ownDir, file] = entries;
    expect(entries).toHaveLength(3);
    expect([stagingDir?.header.name, stagingDir?.header.type]).toEqual([`${STAGING_DIR}/`, 'directory']);
    expect(ownDir?.header.name).toMatch(new RegExp(`^${STAGING_DIR}/[^/]+/$`));
    expect(file?.header).toMatchObject({ name: `${ownDir?.header.name}text`, type: 'file', size: text.length, mode: 0o644, uid: 1000, gid: 1000 });
    expect(file?.body.equals(text)).toBe(true);
    // Three headers, the text padded to its block, the end marker: not one byte more or less.
    expect(archive.length).toBe(3 * 512 + padded(text.length) + TAR_END.length);

    expect(fs.readFileSync(path.join(volumeDir, 'workspace', 'notes.txt')).equals(text)).toBe(true);
    expect(fs.existsSync(path.join(volumeDir, 'workspace', 'evil'))).toBe(false);
    expect(volumes.held).toBe(0);
  });

  test('an over-long text is refused with 413 and nothing is written: announced, chunked, or handed to the service directly', async () => {
    const saved = await admin.put('/api/v1/files/text?path=notes.txt').set('If-None-Match', '*').set('Content-Type', 'text/plain').send('before');
    expect(saved.status).toBe(200);
    const before = treeOf(volumeDir);
    const writes = volumes.archives.length;
    const limit = h.platform.files.settings.textMaxBytes;
    const tooLong = Buffer.alloc(limit + 1, 0x61);

    const announced = await admin.put('/api/v1/files/text?path=notes.txt').set('If-Match', saved.headers.etag ?? '').set('Content-Type', 'text/plain').send(tooLong);
    expect([announced.status, errorCode(announced)]).toEqual([413, 'PAYLOAD_TOO_LARGE']);

    // Without a Content-Length the body is cut once it passes the limit.
    const { server, port } = await servePlatform(h.platform);
    try {
      const cookie = await signInCookie(port, 'platform.test:8080', 'admin', STRONG_PASSWORD, h.config.publicOrigin);
      const chunked = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port,
            method: 'PUT',
            path: '/api/v1/files/text?path=notes.txt',
            agent: false,
            headers: { host: 'platform.test:8080', cookie, origin: h.config.publicOrigin, 'content-type': 'text/plain', 'if-none-match': '*', 'transfer-encoding': 'chunked' },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
          },
        );
        // The server may answer and close before it has read all of it.
        req.on('error', (err) => (req.writableEnded ? undefined : reject(err)));
        req.write(tooLong.subarray(0, 64 * 1024));
        req.end(tooLong.subarray(64 * 1024));
      });
      expect(chunked.status).toBe(413);
      expect(JSON.parse(chunked.body).error.code).toBe('PAYLOAD_TOO_LARGE');
    } finally {
      await closeServer(server);
    }

    // The service's own check, for any caller that is not the route.
    const who = { actor: { id: adminId, username: 'admin' }, origin: NO_ORIGIN };
    await expect(h.platform.files.writeText(who, adminId, parseWorkspacePath('notes.txt'), tooLong, { ifMatch: null, ifNoneMatch: false })).rejects.toMatchObject({ status: 413, code: 'TEXT_TOO_LARGE' });

    expect(volumes.archives.length).toBe(writes);
    expect(treeOf(volumeDir)).toEqual(before);
    expect(fs.readFileSync(path.join(volumeDir, 'workspace', 'notes.txt'), 'utf8')).toBe('before');
    expect(volumes.held).toBe(0);
  });
});
