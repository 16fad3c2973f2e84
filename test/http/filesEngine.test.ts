/**
 * The file API over the workspace-volume port, with a fake of that port
 * (test/support/fakeWorkspaceVolumes.ts): how the API answers when the engine cannot be reached,
 * when a runtime changes under an operation, and when the volume cannot be reached for a lasting
 * reason. The real engine's behaviour is test/integration's (workspaceFiles, fileEngineDown).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pack } from 'tar-stream';
import type TestAgent from 'supertest/lib/agent';
import { infraNotFound } from '../../src/lib/infraErrors';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { FakeWorkspaceVolumes } from '../support/fakeWorkspaceVolumes';
import { createHarness, errorCode, type Harness } from '../support/harness';

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
