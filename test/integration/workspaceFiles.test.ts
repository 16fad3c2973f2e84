/**
 * The file manager against the REAL Docker engine with the stand-in image: bytes through the
 * archive API, names through the in-container agent, for running, stopped and never-started
 * runtimes. Every refusal the API promises is tried, and after each one the test looks inside
 * the volume for leftovers (staging folders, partial files) and at the host's upload spool.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { Readable } from 'node:stream';
import { createGunzip, gzipSync } from 'node:zlib';
import { extract, pack } from 'tar-stream';
import type TestAgent from 'supertest/lib/agent';
import type { DockerWorkspaceVolumes } from '../../src/docker/dockerWorkspaceVolumes';
import { LABELS } from '../../src/docker/runtimeBackend';
import { errorCode, STRONG_PASSWORD } from '../support/harness';
import { signInCookie } from '../support/hostClient';
import { docker, engineHarness, eventually, execIn, newInstanceId, tearDown, withDiagnostics, type EngineHarness } from '../support/engine';

jest.setTimeout(120_000);

const instance = newInstanceId();
const MIB = 1024 ** 2;
const LIMITS = { quotaBytes: 48 * MIB, maxFileBytes: 8 * MIB, maxRequestBytes: 64 * MIB, textMaxBytes: 64 * 1024, importMaxEntries: 300, maxFilesPerUpload: 100 };
const ROOT = '/home/node/.openclaw/workspace';
let h: EngineHarness;
let admin: TestAgent;
let alice: TestAgent;
let aliceId: string;
let bob: TestAgent;
let bobId: string;

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const binary = (res: NodeJS.ReadableStream, cb: (err: Error | null, body: unknown) => void) => {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => cb(null, Buffer.concat(chunks)));
};
const download = (client: TestAgent, url: string) => client.get(url).buffer(true).parse(binary as unknown as Parameters<ReturnType<TestAgent['get']>['parse']>[0]);

async function startRuntime(client: TestAgent): Promise<string> {
  const res = await client.post('/api/v1/runtime/start');
  expect([200, 202]).toContain(res.status);
  await h.platform.runtimes.settled(res.body.runtime.id);
  const view = (await client.get('/api/v1/runtime')).body;
  expect(view.state).toBe('running');
  return (h.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(view.id) as { container_id: string }).container_id;
}

async function stopRuntime(client: TestAgent): Promise<void> {
  const res = await client.post('/api/v1/runtime/stop');
  if (res.status === 202) await h.platform.runtimes.settled(res.body.runtime.id);
  expect((await client.get('/api/v1/runtime')).body.state).toBe('stopped');
}

/** Runs node as uid 1000 in any container holding the user's volume (the runtime, or a helper). */
async function inVolume(userId: string, script: string): Promise<string> {
  const lease = await (h.platform.volumes.inner as DockerWorkspaceVolumes).helpers.acquire(userId, 'exec');
  try {
    const result = await execIn(lease.containerId, ['node', '-e', script]);
    if (result.exitCode !== 0) throw new Error(`script failed: ${result.stderr}`);
    return result.stdout;
  } finally {
    lease.release();
  }
}

/** Whatever an operation may have left behind: staging folders in the volume, spooled files on the host. */
async function leftovers(userId: string): Promise<{ staging: string[]; spool: string[] }> {
  const staging = JSON.parse(
    await inVolume(userId, "const fs=require('fs');let s=[];try{s=fs.readdirSync('/home/node/.openclaw/.clawloops-staging')}catch{};process.stdout.write(JSON.stringify(s))"),
  ) as string[];
  return { staging, spool: fs.readdirSync(h.platform.files.settings.spoolDir) };
}

async function tarEntries(gz: Buffer): Promise<Map<string, { type: string; content: Buffer }>> {
  const entries = new Map<string, { type: string; content: Buffer }>();
  const reader = extract();
  reader.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: unknown) => chunks.push(c as Buffer));
    stream.on('end', () => {
      entries.set(header.name.replace(/\/$/, ''), { type: header.type ?? 'file', content: Buffer.concat(chunks) });
      next();
    });
  });
  await new Promise<void>((resolve, reject) => {
    reader.on('finish', resolve);
    reader.on('error', reject);
    Readable.from([gz]).pipe(createGunzip()).pipe(reader);
  });
  return entries;
}

/** Rewrites the first header's size (an archive bomb: 7 GiB declared, 4 bytes present), with a valid checksum. */
function claimSize(tar: Buffer, size: number): Buffer {
  const out = Buffer.from(tar);
  out.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 12, 'ascii');
  out.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += out[i] ?? 0;
  out.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return out;
}

async function tarOf(entries: { name: string; type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'fifo'; content?: Buffer; linkname?: string }[], options: { gzip?: boolean } = {}): Promise<Buffer> {
  const archive = pack();
  for (const e of entries) {
    const type = e.type ?? 'file';
    if (type === 'file') archive.entry({ name: e.name }, e.content ?? Buffer.alloc(0));
    else archive.entry({ name: e.name, type, ...(e.linkname ? { linkname: e.linkname } : {}), ...(type === 'character-device' ? { devmajor: 1, devminor: 3 } : {}) });
  }
  archive.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of archive as AsyncIterable<Buffer>) chunks.push(chunk);
  const tar = Buffer.concat(chunks);
  return options.gzip ? gzipSync(tar) : tar;
}

beforeAll(async () => {
  h = engineHarness({ instance, files: LIMITS, fileHelperIdleMs: 1_000 });
  await h.platform.watcher.start();
  ({ client: admin } = await h.setupAdmin());
  ({ client: alice, userId: aliceId } = await h.createMember(admin, 'alice'));
  ({ client: bob, userId: bobId } = await h.createMember(admin, 'bob'));
});

afterAll(() => tearDown(h));

describe('round trips (running runtime)', () => {
  beforeAll(async () => {
    await startRuntime(alice);
  });

  it('one file goes up and comes back byte-identical, owned by uid 1000 with mode 0644', async () => {
    const content = randomBytes(3 * MIB + 17);
    const up = await alice.post('/api/v1/files/upload?path=one').attach('files', content, { filename: 'data.bin' });
    expect(up.status).toBe(201);
    expect(up.body.files).toEqual([{ path: 'one/data.bin', size: content.length }]);
    const down = await download(alice, '/api/v1/files/download?path=one/data.bin');
    expect(down.status).toBe(200);
    expect(down.headers['content-length']).toBe(String(content.length));
    expect(down.headers['content-disposition']).toBe('attachment; filename=data.bin');
    expect(sha(down.body as Buffer)).toBe(sha(content));
    const stat = await inVolume(aliceId, `const s=require('fs').statSync('${ROOT}/one/data.bin');process.stdout.write(s.uid+':'+s.gid+' '+(s.mode&0o777).toString(8))`);
    expect(stat).toBe('1000:1000 644');
    expect(await leftovers(aliceId)).toEqual({ staging: [], spool: [] });
  });

  it('many files in one request, announced by a manifest, each byte-identical', async () => {
    const files = Array.from({ length: 25 }, (_, i) => ({ path: `batch/f${i}.bin`, content: randomBytes(1 + i * 4099) }));
    let req = alice.post('/api/v1/files/upload').field('manifest', JSON.stringify(files.map((f) => ({ path: f.path, size: f.content.length }))));
    for (const f of files) req = req.attach('files', f.content, { filename: 'ignored-when-a-manifest-names-it' });
    const up = await req;
    expect(up.status).toBe(201);
    expect(up.body.files).toHaveLength(25);
    for (const f of files.filter((_, i) => i % 6 === 0)) {
      const down = await download(alice, `/api/v1/files/download?path=${encodeURIComponent(f.path)}`);
      expect(sha(down.body as Buffer)).toBe(sha(f.content));
    }
    const list = await alice.get('/api/v1/files?path=batch');
    // Sorted as people sort: f2 before f10.
    expect(list.body.entries.slice(0, 3).map((e: { name: string }) => e.name)).toEqual(['f0.bin', 'f1.bin', 'f2.bin']);
  });

  it('a folder tree with unicode names and spaces keeps its structure, and comes back as a .tar.gz of the same tree', async () => {
    const tree: Record<string, Buffer> = {
      'Ünïcödé folder/日本語 ファイル.txt': Buffer.from('こんにちは\n'),
      'Ünïcödé folder/sub dir/a b c.md': Buffer.from('# spaces\n'),
      'Ünïcödé folder/emoji 🎉.bin': randomBytes(70_000),
    };
    let req = alice.post(`/api/v1/files/upload?path=${encodeURIComponent('trees')}`);
    // No manifest: each file is spooled on the host first; the relative path comes from the file name.
    // form-data keeps the folders of a name only as `filepath` (a browser sends the name as given).
    for (const [path, content] of Object.entries(tree)) req = req.attach('files', content, { filename: path, filepath: path } as { filename: string });
    const up = await req;
    expect(up.status).toBe(201);
    const list = await alice.get(`/api/v1/files?path=${encodeURIComponent('trees/Ünïcödé folder')}`);
    expect(list.body.entries.map((e: { name: string; type: string }) => `${e.type}:${e.name}`)).toEqual(['dir:sub dir', 'file:emoji 🎉.bin', 'file:日本語 ファイル.txt']);
    const archive = await download(alice, `/api/v1/files/download?path=${encodeURIComponent('trees/Ünïcödé folder')}`);
    expect(archive.status).toBe(200);
    expect(archive.headers['content-type']).toBe('application/gzip');
    expect(archive.headers['content-disposition']).toContain('.tar.gz');
    const entries = await tarEntries(archive.body as Buffer);
    for (const [path, content] of Object.entries(tree)) expect(sha(entries.get(path)?.content ?? Buffer.alloc(0))).toBe(sha(content));
    expect(entries.get('Ünïcödé folder/sub dir')?.type).toBe('directory');
    expect(await leftovers(aliceId)).toEqual({ staging: [], spool: [] });
  });

  it('Range requests resume a download; an unsatisfiable range is a 416', async () => {
    const content = Buffer.from('0123456789abcdefghij');
    await alice.post('/api/v1/files/upload').attach('files', content, { filename: 'range.txt' });
    const part = await download(alice, '/api/v1/files/download?path=range.txt').set('Range', 'bytes=5-9');
    expect(part.status).toBe(206);
    expect(part.headers['content-range']).toBe('bytes 5-9/20');
    expect((part.body as Buffer).toString()).toBe('56789');
    const tail = await download(alice, '/api/v1/files/download?path=range.txt').set('Range', 'bytes=15-');
    expect((tail.body as Buffer).toString()).toBe('fghij');
    const bad = await alice.get('/api/v1/files/download?path=range.txt').set('Range', 'bytes=50-60');
    expect(bad.status).toBe(416);
    expect(errorCode(bad)).toBe('RANGE_NOT_SATISFIABLE');
  });

  it('a downloaded page never runs on the platform origin; images can be previewed inline', async () => {
    await alice.post('/api/v1/files/upload').attach('files', Buffer.from('<script>alert(1)</script>'), { filename: 'evil.html' });
    const page = await alice.get('/api/v1/files/download?path=evil.html&inline=1');
    expect(page.headers['content-disposition']).toMatch(/^attachment/);
    expect(page.headers['content-security-policy']).toContain('sandbox');
    expect(page.headers['x-content-type-options']).toBe('nosniff');
    await alice.post('/api/v1/files/upload').attach('files', Buffer.from([0x89, 0x50, 0x4e, 0x47]), { filename: 'pic.png' });
    const image = await alice.get('/api/v1/files/download?path=pic.png&inline=1');
    expect(image.headers['content-type']).toBe('image/png');
    expect(image.headers['content-disposition']).toMatch(/^inline/);
  });

  it('mkdir, move and delete; a folder is deleted only with recursive=1', async () => {
    expect((await alice.post('/api/v1/files/mkdir').send({ path: 'work/deep/er' })).status).toBe(201);
    expect(errorCode(await alice.post('/api/v1/files/mkdir').send({ path: 'work' }))).toBe('ALREADY_EXISTS');
    await alice.post('/api/v1/files/upload?path=work').attach('files', Buffer.from('x'), { filename: 'note.txt' });
    await alice.post('/api/v1/files/upload?path=work').attach('files', Buffer.from('y'), { filename: 'other.txt' });
    const clash = await alice.post('/api/v1/files/move').send({ from: 'work/note.txt', to: 'work/other.txt' });
    expect(clash.status).toBe(409);
    expect(errorCode(clash)).toBe('ALREADY_EXISTS');
    expect((await alice.post('/api/v1/files/move').send({ from: 'work/note.txt', to: 'work/deep/renamed.txt' })).status).toBe(200);
    expect(errorCode(await alice.post('/api/v1/files/move').send({ from: 'work', to: 'work/deep/inside' }))).toBe('INVALID_MOVE');
    const names = (await alice.get('/api/v1/files?path=work/deep')).body.entries.map((e: { name: string }) => e.name);
    expect(names).toEqual(['er', 'renamed.txt']);
    const refused = await alice.delete('/api/v1/files?path=work');
    expect(refused.status).toBe(409);
    expect(errorCode(refused)).toBe('RECURSIVE_REQUIRED');
    const removed = await alice.delete('/api/v1/files?path=work&recursive=1');
    expect(removed.status).toBe(200);
    expect(removed.body).toMatchObject({ path: 'work', bytes: 2, files: 2 });
    expect((await alice.get('/api/v1/files?path=work')).status).toBe(404);
  });

  it('text editing: read with an ETag, save with If-Match, 412 when the file changed meanwhile', async () => {
    await alice.post('/api/v1/files/upload').attach('files', Buffer.from('first\n'), { filename: 'notes.md' });
    const read = await alice.get('/api/v1/files/text?path=notes.md');
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({ content: 'first\n', size: 6 });
    const etag = read.headers.etag as string;
    expect(read.body.etag).toBe(etag);
    const saved = await alice.put('/api/v1/files/text?path=notes.md').set('If-Match', etag).set('Content-Type', 'text/plain; charset=utf-8').send('second\n');
    expect(saved.status).toBe(200);
    // The agent changes the file behind the editor's back…
    await inVolume(aliceId, `require('fs').appendFileSync('${ROOT}/notes.md', 'agent was here\\n')`);
    const stale = await alice.put('/api/v1/files/text?path=notes.md').set('If-Match', saved.headers.etag as string).set('Content-Type', 'text/plain').send('third\n');
    expect(stale.status).toBe(412);
    expect(errorCode(stale)).toBe('PRECONDITION_FAILED');
    expect((await alice.get('/api/v1/files/text?path=notes.md')).body.content).toBe('second\nagent was here\n');
    const blind = await alice.put('/api/v1/files/text?path=notes.md').set('Content-Type', 'text/plain').send('blind\n');
    expect(blind.status).toBe(428);
    const created = await alice.put('/api/v1/files/text?path=new.md').set('If-None-Match', '*').set('Content-Type', 'text/plain').send('brand new\n');
    expect(created.status).toBe(200);
    expect(errorCode(await alice.put('/api/v1/files/text?path=new.md').set('If-None-Match', '*').set('Content-Type', 'text/plain').send('again\n'))).toBe('PRECONDITION_FAILED');
    await alice.post('/api/v1/files/upload').attach('files', randomBytes(LIMITS.textMaxBytes + 1), { filename: 'big.txt' });
    const tooBig = await alice.get('/api/v1/files/text?path=big.txt');
    expect(tooBig.status).toBe(413);
    expect(tooBig.body.error.message).toContain(String(LIMITS.textMaxBytes));
    await alice.post('/api/v1/files/upload').attach('files', Buffer.from([0xff, 0xfe, 0x00, 0x80]), { filename: 'blob.dat' });
    expect(errorCode(await alice.get('/api/v1/files/text?path=blob.dat'))).toBe('NOT_TEXT');
  });

  it('export then import restores the same tree elsewhere', async () => {
    const exported = await download(alice, '/api/v1/files/export');
    expect(exported.status).toBe(200);
    const before = await tarEntries(exported.body as Buffer);
    expect(before.get('workspace/one/data.bin')).toBeDefined();
    const imported = await alice.post('/api/v1/files/import?path=restored').attach('archive', exported.body as Buffer, { filename: 'workspace.tar.gz' });
    expect(imported.status).toBe(201);
    const again = await tarEntries((await download(alice, '/api/v1/files/download?path=restored/workspace')).body as Buffer);
    for (const [name, entry] of before) {
      if (entry.type !== 'file') continue;
      expect(sha(again.get(name)?.content ?? Buffer.from('missing'))).toBe(sha(entry.content));
    }
    expect(await leftovers(aliceId)).toEqual({ staging: [], spool: [] });
  });
});

describe('a stopped runtime', () => {
  it('a never-started user can upload; a helper with no network serves the files and goes away when idle', async () => {
    const content = Buffer.from('written while stopped\n');
    const up = await bob.post('/api/v1/files/upload?path=inbox').attach('files', content, { filename: 'hello.txt' });
    expect(up.status).toBe(201);
    const helpers = await docker.listContainers({ filters: JSON.stringify({ label: [`${LABELS.instance}=${instance}`, `${LABELS.role}=files`, `${LABELS.userId}=${bobId}`] }) });
    expect(helpers).toHaveLength(1);
    const info = await docker.getContainer(helpers[0]!.Id).inspect();
    expect(info.HostConfig.NetworkMode).toBe('none');
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.Config.User).toBe('1000:1000');
    expect((await bob.get('/api/v1/runtime')).body.state).not.toBe('running');
    await eventually(async () => ((await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.instance}=${instance}`, `${LABELS.role}=files`] }) })).length === 0 ? true : undefined), 'the idle helper to be removed');
  });

  it('upload while stopped, then start: the runtime sees the file; stop again and download it', async () => {
    const content = randomBytes(200_000);
    expect((await bob.post('/api/v1/files/upload?path=inbox').attach('files', content, { filename: 'before-start.bin' })).status).toBe(201);
    const containerId = await startRuntime(bob);
    const seen = await execIn(containerId, ['node', '-e', `process.stdout.write(require('crypto').createHash('sha256').update(require('fs').readFileSync('${ROOT}/inbox/before-start.bin')).digest('hex'))`]);
    expect(seen.stdout).toBe(sha(content));
    await stopRuntime(bob);
    const down = await download(bob, '/api/v1/files/download?path=inbox/before-start.bin');
    expect(down.status).toBe(200);
    expect(sha(down.body as Buffer)).toBe(sha(content));
    expect((await bob.get('/api/v1/runtime')).body.state).toBe('stopped');
  });
});

describe('refusals', () => {
  const tries: [string, string, string][] = [
    ['../outside', 'PATH_TRAVERSAL', 'a .. segment'],
    ['%2e%2e/outside', 'PATH_TRAVERSAL', 'an encoded .. segment'],
    ['docs/%2E%2E/%2E%2E/etc', 'PATH_TRAVERSAL', 'an encoded .. deeper down'],
    ['/etc', 'INVALID_PATH', 'an absolute path'],
    ['a%00b', 'INVALID_PATH', 'a NUL byte'],
    [`${'x'.repeat(256)}`, 'NAME_TOO_LONG', 'a name over 255 bytes'],
  ];
  for (const [path, code, what] of tries) {
    it(`${what} is refused by list, download, upload and delete`, async () => {
      for (const res of [
        await alice.get(`/api/v1/files?path=${path}`),
        await alice.get(`/api/v1/files/download?path=${path}`),
        await alice.post(`/api/v1/files/upload?path=${path}`).attach('files', Buffer.from('x'), { filename: 'x.txt' }),
        await alice.delete(`/api/v1/files?path=${path}`),
      ]) {
        expect(res.status).toBe(400);
        expect(errorCode(res)).toBe(code);
      }
    });
  }

  it('a symlink to /etc made inside the workspace leads nowhere: no listing, reading or writing through it', async () => {
    await inVolume(aliceId, `require('fs').symlinkSync('/etc', '${ROOT}/etc-link')`);
    const listed = (await alice.get('/api/v1/files')).body.entries.find((e: { name: string }) => e.name === 'etc-link');
    expect(listed).toMatchObject({ type: 'symlink', target: '/etc', targetType: null });
    for (const res of [
      await alice.get('/api/v1/files?path=etc-link'),
      await alice.get('/api/v1/files/download?path=etc-link/passwd'),
      await alice.get('/api/v1/files/text?path=etc-link/hostname'),
      await alice.post('/api/v1/files/upload?path=etc-link').attach('files', Buffer.from('x'), { filename: 'owned.txt' }),
      await alice.post('/api/v1/files/mkdir').send({ path: 'etc-link/newdir' }),
      await alice.post('/api/v1/files/move').send({ from: 'range.txt', to: 'etc-link/range.txt' }),
      await alice.post('/api/v1/files/import?path=etc-link').attach('archive', await tarOf([{ name: 'x.txt', content: Buffer.from('x') }]), { filename: 'a.tar' }),
    ]) {
      expect(res.status).toBe(403);
      expect(errorCode(res)).toBe('PATH_OUTSIDE_ROOT');
    }
    // Deleting the link removes the link, never what it points to.
    expect((await alice.delete('/api/v1/files?path=etc-link')).status).toBe(200);
    expect(await inVolume(aliceId, "process.stdout.write(String(require('fs').existsSync('/etc/passwd')))")).toBe('true');
  });

  it('an existing name is not overwritten without overwrite=1: 409 names the conflicts; with it the file is replaced', async () => {
    await alice.post('/api/v1/files/upload?path=clash').attach('files', Buffer.from('old'), { filename: 'a.txt' });
    const refused = await alice.post('/api/v1/files/upload?path=clash').attach('files', Buffer.from('new'), { filename: 'a.txt' }).attach('files', Buffer.from('b'), { filename: 'b.txt' });
    expect(refused.status).toBe(409);
    expect(errorCode(refused)).toBe('NAME_CONFLICT');
    expect(refused.body.error.conflicts).toEqual([{ path: 'clash/a.txt', reason: 'exists' }]);
    // All or nothing: b.txt did not land either.
    expect((await alice.get('/api/v1/files?path=clash')).body.entries.map((e: { name: string }) => e.name)).toEqual(['a.txt']);
    // With a manifest the conflict is found before a byte is sent.
    const early = await alice.post('/api/v1/files/upload?path=clash').field('manifest', JSON.stringify([{ path: 'a.txt', size: 3 }])).attach('files', Buffer.from('new'), { filename: 'a.txt' });
    expect(errorCode(early)).toBe('NAME_CONFLICT');
    const replaced = await alice.post('/api/v1/files/upload?path=clash&overwrite=1').attach('files', Buffer.from('new'), { filename: 'a.txt' });
    expect(replaced.status).toBe(201);
    expect(((await download(alice, '/api/v1/files/download?path=clash/a.txt')).body as Buffer).toString()).toBe('new');
    expect(await leftovers(aliceId)).toEqual({ staging: [], spool: [] });
  });

  it('limits answer 413 with the limit in the message: file size, request size, quota', async () => {
    const tooBig = await alice.post('/api/v1/files/upload').attach('files', Buffer.alloc(LIMITS.maxFileBytes + 1), { filename: 'too-big.bin' });
    expect(tooBig.status).toBe(413);
    expect(errorCode(tooBig)).toBe('FILE_TOO_LARGE');
    expect(tooBig.body.error.message).toContain(String(LIMITS.maxFileBytes));
    const announced = await alice
      .post('/api/v1/files/upload')
      .field('manifest', JSON.stringify([{ path: 'too-big.bin', size: LIMITS.maxFileBytes + 1 }]))
      .attach('files', Buffer.alloc(10), { filename: 'too-big.bin' });
    expect(errorCode(announced)).toBe('FILE_TOO_LARGE');
    const request = await alice.post('/api/v1/files/upload').set('Content-Type', 'multipart/form-data; boundary=x').set('Content-Length', String(LIMITS.maxRequestBytes + 1)).send('');
    expect(request.status).toBe(413);
    expect(errorCode(request)).toBe('REQUEST_TOO_LARGE');
    expect(request.body.error.message).toContain(String(LIMITS.maxRequestBytes));

    const usage = (await alice.get('/api/v1/files/usage?fresh=1')).body as { bytes: number; quotaBytes: number };
    expect(usage.quotaBytes).toBe(LIMITS.quotaBytes);
    expect(usage.bytes).toBeGreaterThan(3 * MIB);
    const free = usage.quotaBytes - usage.bytes;
    // Six files of 7 MiB: each allowed alone, together over the quota. Refused before anything is written.
    const sizes = Array.from({ length: Math.ceil(free / (7 * MIB)) + 1 }, (_, i) => ({ path: `q/f${i}.bin`, size: 7 * MIB }));
    const quota = await alice.post('/api/v1/files/upload').field('manifest', JSON.stringify(sizes)).attach('files', Buffer.alloc(7 * MIB), { filename: 'f0.bin' });
    expect(quota.status).toBe(413);
    expect(errorCode(quota)).toBe('QUOTA_EXCEEDED');
    expect(quota.body.error.message).toContain(String(LIMITS.quotaBytes));
    // Without a manifest the files spool on the host and the quota stops the one that does not fit.
    let spooled = alice.post('/api/v1/files/upload');
    for (const f of sizes) spooled = spooled.attach('files', Buffer.alloc(f.size), { filename: f.path, filepath: f.path } as { filename: string });
    const late = await spooled;
    expect(errorCode(late)).toBe('QUOTA_EXCEEDED');
    expect((await alice.get('/api/v1/files?path=q')).status).toBe(404);
    expect(await leftovers(aliceId)).toEqual({ staging: [], spool: [] });
  });

  it('an import refuses unsafe or oversized archives and leaves nothing of them behind', async () => {
    const cases: [string, Buffer, number, string][] = [
      ['../evil', await tarOf([{ name: 'ok.txt', content: Buffer.from('ok') }, { name: '../evil', content: Buffer.from('x') }]), 400, 'ARCHIVE_UNSAFE_ENTRY'],
      ['an absolute path', await tarOf([{ name: '/etc/cron.d/evil', content: Buffer.from('x') }]), 400, 'ARCHIVE_UNSAFE_ENTRY'],
      ['a symlink out', await tarOf([{ name: 'out', type: 'symlink', linkname: '/etc' }]), 400, 'ARCHIVE_UNSAFE_ENTRY'],
      ['a relative symlink out', await tarOf([{ name: 'a/out', type: 'symlink', linkname: '../../../etc' }]), 400, 'ARCHIVE_UNSAFE_ENTRY'],
      ['a device node', await tarOf([{ name: 'null', type: 'character-device' }]), 400, 'ARCHIVE_UNSAFE_ENTRY'],
      ['a hard link', await tarOf([{ name: 'f', content: Buffer.from('x') }, { name: 'g', type: 'link', linkname: 'f' }]), 400, 'ARCHIVE_UNSAFE_ENTRY'],
      ['too many entries', await tarOf(Array.from({ length: LIMITS.importMaxEntries + 1 }, (_, i) => ({ name: `many/${i}`, content: Buffer.from('x') })), { gzip: true }), 413, 'ARCHIVE_TOO_MANY_ENTRIES'],
      ['a huge declared size', claimSize(await tarOf([{ name: 'bomb.bin', content: Buffer.from('tiny') }]), 7 * 1024 ** 3), 413, 'FILE_TOO_LARGE'],
      ['sizes adding up past the quota', await tarOf(Array.from({ length: 8 }, (_, i) => ({ name: `q${i}.bin`, content: Buffer.alloc(7 * MIB) })), { gzip: true }), 413, 'QUOTA_EXCEEDED'],
      ['a truncated archive', (await tarOf([{ name: 'a.bin', content: randomBytes(100_000) }], { gzip: true })).subarray(0, 20_000), 400, 'ARCHIVE_INVALID'],
      ['not an archive', randomBytes(5000), 400, 'ARCHIVE_INVALID'],
    ];
    for (const [what, archive, status, code] of cases) {
      const res = await alice.post('/api/v1/files/import?path=imported').attach('archive', archive, { filename: 'upload.tar' });
      expect([what, res.status, errorCode(res)]).toEqual([what, status, code]);
      expect([what, (await alice.get('/api/v1/files?path=imported')).status]).toEqual([what, 404]);
    }
    expect(await leftovers(aliceId)).toEqual({ staging: [], spool: [] });
  });

  it('a client that disconnects mid-upload leaves no partial file, no staging folder and no temp file', async () => {
    const server = http.createServer(h.platform.app);
    const sockets: Socket[] = [];
    server.on('connection', (socket) => sockets.push(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    const cookie = await signInCookie(port, new URL(h.config.publicOrigin).host, 'alice', STRONG_PASSWORD);
    try {
      for (const manifest of [true, false]) {
        const boundary = 'cut-here';
        const head =
          (manifest ? `--${boundary}\r\nContent-Disposition: form-data; name="manifest"\r\n\r\n${JSON.stringify([{ path: 'partial.bin', size: 4 * MIB }])}\r\n` : '') +
          `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="partial.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;
        const req = http.request({
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/api/v1/files/upload?path=aborted',
          headers: { Cookie: cookie, Origin: h.config.publicOrigin, 'Content-Type': `multipart/form-data; boundary=${boundary}`, 'Content-Length': String(head.length + 4 * MIB + 40) },
        });
        req.on('error', () => undefined);
        req.write(head);
        req.write(randomBytes(2 * MIB));
        // Cut once the server holds what was sent: the upload is under way, not yet begun or already refused.
        const sent = Buffer.byteLength(head) + 2 * MIB;
        await eventually(() => (sockets.some((s) => s.bytesRead >= sent) ? true : undefined), 'the server to have read the first half', 20_000, 10);
        req.destroy();
        await eventually(async () => {
          const left = await leftovers(aliceId);
          return left.staging.length === 0 && left.spool.length === 0 ? true : undefined;
        }, 'the aborted upload to be cleaned up');
        expect((await alice.get('/api/v1/files?path=aborted')).status).toBe(404);
      }
    } finally {
      server.close();
    }
  });
});

describe('who may touch whose files', () => {
  it('anonymous callers get 401; members reach only their own files; admins reach anyone\'s, audited', async () => {
    const anonymous = h.client();
    for (const res of [await anonymous.get('/api/v1/files'), await anonymous.get('/api/v1/files/download?path=range.txt'), await anonymous.post('/api/v1/files/mkdir').send({ path: 'x' })]) {
      expect(res.status).toBe(401);
    }
    // Bob's API only ever addresses bob's volume: alice's file is not there.
    expect((await bob.get('/api/v1/files/download?path=range.txt')).status).toBe(404);
    const sneaky = await bob.get(`/api/v1/admin/users/${aliceId}/files?path=`);
    expect(sneaky.status).toBe(403);
    expect(errorCode(sneaky)).toBe('ADMIN_REQUIRED');
    expect((await bob.post(`/api/v1/admin/users/${aliceId}/files/mkdir`).send({ path: 'bob-was-here' })).status).toBe(403);

    const listed = await admin.get(`/api/v1/admin/users/${aliceId}/files?path=one`);
    expect(listed.status).toBe(200);
    expect(listed.body.entries.map((e: { name: string }) => e.name)).toEqual(['data.bin']);
    type Entry = { action: string; actor: { username: string }; detail: Record<string, unknown> };
    const audited = async (action: string) => (await admin.get(`/api/v1/admin/audit?action=${action}&limit=200`)).body.items as Entry[];
    expect((await audited('files.admin-read'))[0]).toMatchObject({ actor: { username: 'admin' }, detail: { path: 'one' } });
    expect((await audited('files.upload')).find((e) => e.detail.path === 'one')).toMatchObject({ actor: { username: 'alice' }, detail: { files: 1, bytes: 3 * MIB + 17 } });
    for (const action of ['files.mkdir', 'files.move', 'files.delete', 'files.edit', 'files.import']) expect((await audited(action)).length).toBeGreaterThan(0);
  });

  it('the helper of a purged runtime goes first, so the volume can go', async () => {
    const carol = await h.createMember(admin, 'carol');
    expect((await carol.client.post('/api/v1/files/upload').attach('files', Buffer.from('c'), { filename: 'c.txt' })).status).toBe(201);
    const purge = await admin.delete(`/api/v1/admin/users/${carol.userId}/runtime?purge=1&confirm=carol`);
    expect(purge.status).toBe(202);
    await h.platform.runtimes.settled(purge.body.runtime.id);
    expect(purge.body.operation.kind).toBe('purge');
    const volumes = await docker.listVolumes({ filters: JSON.stringify({ label: [`${LABELS.instance}=${instance}`, `${LABELS.userId}=${carol.userId}`] }) });
    expect(volumes.Volumes ?? []).toHaveLength(0);
  });
});
