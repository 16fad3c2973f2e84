/**
 * WebDAV through the real engine, against /dav/ of a member whose runtime is stopped, every byte
 * going through the file helper and the engine's archive API: all four groups of litmus (basic,
 * copymove, props, locks); an rclone sync both ways (unicode names, empty folders, a 256 MiB file,
 * byte-identical by SHA-256), after which the runtime starts and finds the synced tree in its
 * workspace; and ordinary programs (cp, cat, mkdir, mv, rm, find, sha256sum) reading and writing
 * through a davfs2 mount and an rclone mount. Skipped when litmus or rclone is missing, the mounts
 * when davfs2, fusermount, root or /dev/fuse is (scripts/ensure-webdav-clients.sh).
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type TestAgent from 'supertest/lib/agent';
import { CAN_MOUNT, FUSERMOUNT, LITMUS, LITMUS_GROUPS, MOUNT_DAVFS, RCLONE, litmusReport, mountDavfs, mountRclone, program, rclone, rcloneRemote, runLitmus, snapshotTree, writeAwkwardTree } from '../support/davClients';
import { engineHarness, execIn, newInstanceId, tearDown, withDiagnostics, type EngineHarness } from '../support/engine';
import { closeServer, servePlatform } from '../support/hostClient';

jest.setTimeout(600_000);

const describeIf = LITMUS && RCLONE ? describe : describe.skip;
const FILES_ROOT = '/home/node/.openclaw/workspace';
const instance = newInstanceId();
const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

let h: EngineHarness;
let server: http.Server;
let port: number;
let alice: TestAgent;
let secret: string;
let work: string;
/** The tree rclone synced (relative path → SHA-256, and its folders); the mounts read it back. */
let synced: { files: Record<string, string>; dirs: string[] } | null = null;
let containerId = '';
const unmounts: (() => Promise<void>)[] = [];
const mountsTest = CAN_MOUNT && MOUNT_DAVFS && FUSERMOUNT && RCLONE ? it : (name: string) => test.skip(name, () => undefined);

async function settle(client: TestAgent, action: 'start' | 'stop'): Promise<void> {
  const res = await client.post(`/api/v1/runtime/${action}`);
  expect([200, 202]).toContain(res.status);
  if (res.status === 202) await h.platform.runtimes.settled(res.body.runtime.id);
  expect((await client.get('/api/v1/runtime')).body.state).toBe(action === 'start' ? 'running' : 'stopped');
}

describeIf('WebDAV through the real engine', () => {
  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-dav-engine-'));
    h = engineHarness({ instance, fileHelperIdleMs: 5_000 });
    await h.platform.watcher.start();
    const { client: admin } = await h.setupAdmin();
    ({ client: alice } = await h.createMember(admin, 'alice'));
    // Started once so its volume holds OpenClaw's folders, then stopped: WebDAV works without it.
    await settle(alice, 'start');
    await settle(alice, 'stop');
    secret = ((await alice.post('/api/v1/account/tokens').send({ name: 'dav', scopes: ['files'], expiresInDays: 1 })).body as { secret: string }).secret;
    ({ server, port } = await servePlatform(h.platform));
  });

  afterAll(async () => {
    // A mount left behind would hang whatever walks the temp folder next.
    for (const unmount of unmounts) await unmount().catch((err: unknown) => process.stdout.write(`unmount: ${String(err)}\n`));
    if (server) await closeServer(server);
    if (h) await tearDown(h);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('litmus: basic, copymove, props and locks all pass', async () => {
    const all = await runLitmus(`http://127.0.0.1:${port}/dav/`, 'alice', secret, undefined, 300_000, { atOnce: true });
    // The record the closing note quotes.
    process.stdout.write(`\nlitmus through the real engine\n${litmusReport(all, {})}\n`);
    for (const group of LITMUS_GROUPS) expect([group, all.some((r) => r.group === group)]).toEqual([group, true]);
    expect(all.filter((r) => r.outcome === 'FAIL').map((r) => `${r.group}/${r.test}: ${r.detail}`)).toEqual([]);
  });

  it('rclone syncs a tree with a 256 MiB file up and back byte-identical, and the runtime finds it', async () => {
    const source = path.join(work, 'source');
    writeAwkwardTree(source, 256 * 1024 ** 2);
    const expected = snapshotTree(source);
    synced = expected;
    const env = await rcloneRemote(work, `http://127.0.0.1:${port}/dav/`, 'alice', secret);
    await rclone(['sync', source, 'dav:tree', '--create-empty-src-dirs'], env, 300_000);

    const back = path.join(work, 'back');
    await rclone(['sync', 'dav:tree', back, '--create-empty-src-dirs'], env, 300_000);
    expect(snapshotTree(back)).toEqual(expected);
    await rclone(['check', source, 'dav:tree'], env, 300_000);

    await settle(alice, 'start');
    const view = (await alice.get('/api/v1/runtime')).body as { id: string };
    containerId = (h.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(view.id) as { container_id: string }).container_id;
    // The stand-in image has node and no shell.
    // Streamed: the runtime's memory limit is smaller than a whole read would need.
    const script = `const c=require('crypto'),f=require('fs'),t='${FILES_ROOT}/tree';const h=c.createHash('sha256');f.createReadStream(t+'/large.bin').on('data',(d)=>h.update(d)).on('end',()=>console.log(JSON.stringify({large:h.digest('hex'),unicode:f.readdirSync(t+'/héllo wörld')})))`;
    const seen = await execIn(containerId, ['node', '-e', script]);
    expect([seen.exitCode, seen.stderr]).toEqual([0, '']);
    expect(JSON.parse(seen.stdout)).toEqual({ large: expected.files['large.bin'], unicode: ['日本語のファイル.txt'] });
  });

  mountsTest('ordinary programs read and write through a davfs2 mount and an rclone mount', async () => {
    expect(synced).not.toBeNull();
    const expected = synced as NonNullable<typeof synced>;
    const url = `http://127.0.0.1:${port}/dav/`;
    const local = path.join(work, 'local.bin');
    writeRandomFile(local, 5 * 1024 ** 2 + 3);
    const localSha = sha256(fs.readFileSync(local));
    const ok = async (file: string, args: string[]) => {
      const run = await program(file, args, { timeoutMs: 300_000 });
      expect([file, ...args, run.code, run.stderr]).toEqual([file, ...args, 0, '']);
      return run.stdout;
    };

    // davfs2: reads, then cp, mkdir, mv, rm. Its uploads happen at the latest on unmount.
    const davfs = path.join(work, 'davfs');
    unmounts.push(await mountDavfs(url, 'alice', secret, work, davfs));
    expect(await ok('cat', [path.join(davfs, 'tree/héllo wörld/日本語のファイル.txt')])).toBe('こんにちは\n');
    expect((await ok('sha256sum', [path.join(davfs, 'tree/deep/a/b/c/d.bin')])).split(' ')[0]).toBe(expected.files['deep/a/b/c/d.bin']);
    await ok('mkdir', [path.join(davfs, 'from davfs')]);
    await ok('cp', [local, path.join(davfs, 'from davfs/copied.bin')]);
    await ok('cp', [local, path.join(davfs, 'from davfs/gone.bin')]);
    await ok('sh', ['-c', 'printf draft > "$1"', 'sh', path.join(davfs, 'from davfs/draft.txt')]);
    await ok('mv', [path.join(davfs, 'from davfs/draft.txt'), path.join(davfs, 'from davfs/final.txt')]);
    await ok('rm', [path.join(davfs, 'from davfs/gone.bin')]);
    // davfs2 1.6.1 negotiates FUSE protocol 7.5 with the kernel, and on this machine's kernel
    // (6.18) it answers the kernel's READDIR (opcode 28) with EINVAL, right after our 207 to its
    // PROPFIND of the folder (both seen in strace): listing fails, named files work. Recorded, not failed.
    const listed = await program('ls', ['-1', path.join(davfs, 'from davfs')]);
    if (listed.code === 0) expect(listed.stdout).toBe('copied.bin\nfinal.txt\n');
    else {
      expect(listed.stderr).toContain('Invalid argument');
      process.stdout.write(`davfs2: listing a folder fails on this kernel (${listed.stderr.trim()}); reads and writes work\n`);
    }
    await (unmounts.pop() as () => Promise<void>)();

    // rclone mount: the synced tree as find and sha256sum see it (the 256 MiB file left to the
    // sync above), then writes: cp, mkdir, a move across folders of what davfs2 wrote, rm.
    const mounted = path.join(work, 'rclone-mount');
    unmounts.push(await mountRclone(await rcloneRemote(work, url, 'alice', secret), mounted));
    const walk = await ok('sh', ['-c', 'cd "$1" && find . -mindepth 1 -type d && find . -type f ! -name large.bin -exec sha256sum {} +', 'sh', path.join(mounted, 'tree')]);
    const seen: { files: Record<string, string>; dirs: string[] } = { files: {}, dirs: [] };
    for (const line of walk.split('\n').filter(Boolean)) {
      const file = /^([0-9a-f]{64}) {2}\.\/(.*)$/.exec(line);
      if (file) seen.files[file[2] as string] = file[1] as string;
      else seen.dirs.push(line.replace(/^\.\//, ''));
    }
    seen.dirs.sort();
    expect(seen).toEqual({ files: Object.fromEntries(Object.entries(expected.files).filter(([name]) => name !== 'large.bin')), dirs: expected.dirs });
    expect(await ok('ls', ['-1', path.join(mounted, 'from davfs')])).toBe('copied.bin\nfinal.txt\n');
    await ok('mkdir', [path.join(mounted, 'from rclone')]);
    await ok('cp', [local, path.join(mounted, 'from rclone/copied.bin')]);
    await ok('mv', [path.join(mounted, 'from davfs/final.txt'), path.join(mounted, 'from rclone/final.txt')]);
    await ok('cp', [path.join(mounted, 'tree/empty.txt'), path.join(mounted, 'from rclone/gone.txt')]);
    await ok('rm', [path.join(mounted, 'from rclone/gone.txt')]);
    // rclone uploads a closed file in the background: the copy is done when /dav/ has all of it.
    await untilDavHas(url, 'from rclone/copied.bin', fs.statSync(local).size);
    await (unmounts.pop() as () => Promise<void>)();

    // What the runtime finds in its workspace: the bytes both mounts wrote, nothing they moved away or removed.
    const script = `const c=require('crypto'),f=require('fs'),w='${FILES_ROOT}';const s=(p)=>c.createHash('sha256').update(f.readFileSync(w+'/'+p)).digest('hex');console.log(JSON.stringify({davfs:f.readdirSync(w+'/from davfs').sort(),rclone:f.readdirSync(w+'/from rclone').sort(),byDavfs:s('from davfs/copied.bin'),byRclone:s('from rclone/copied.bin'),moved:f.readFileSync(w+'/from rclone/final.txt','utf8')}))`;
    const seenByRuntime = await execIn(containerId, ['node', '-e', script]);
    expect([seenByRuntime.exitCode, seenByRuntime.stderr]).toEqual([0, '']);
    expect(JSON.parse(seenByRuntime.stdout)).toEqual({ davfs: ['copied.bin'], rclone: ['copied.bin', 'final.txt'], byDavfs: localSha, byRclone: localSha, moved: 'draft' });
  });
});

/** Waits (up to a minute) until a HEAD of the file through /dav/ answers 200 with `size` bytes. */
async function untilDavHas(url: string, file: string, size: number): Promise<void> {
  const authorization = `Basic ${Buffer.from(`alice:${secret}`).toString('base64')}`;
  const deadline = Date.now() + 60_000;
  let last = '';
  while (Date.now() < deadline) {
    const res = await fetch(`${url}${file.split('/').map(encodeURIComponent).join('/')}`, { method: 'HEAD', headers: { authorization } });
    last = `${res.status} ${res.headers.get('content-length')}`;
    if (res.status === 200 && res.headers.get('content-length') === String(size)) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`${file} never reached ${size} bytes through /dav/ (last: ${last})`);
}

function writeRandomFile(file: string, bytes: number): void {
  fs.writeFileSync(file, randomBytes(bytes));
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
