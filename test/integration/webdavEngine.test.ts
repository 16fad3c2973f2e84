/**
 * WebDAV through the real engine: litmus's basic and copymove groups (the ones whose requests
 * become engine work; props and locks, the same writes plus state of our own, run over the volume
 * port's fake in test/http/webdavLitmus, which keeps the suite's time down) and an rclone
 * sync both ways (unicode names, empty folders, a 256 MiB file, byte-identical by SHA-256)
 * against /dav/ of a member whose runtime is stopped, every byte going through the file helper
 * and the engine's archive API. Then the runtime starts and finds the synced tree in its
 * workspace. Skipped when litmus or rclone is missing (scripts/ensure-webdav-clients.sh).
 */
import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import type TestAgent from 'supertest/lib/agent';
import { LITMUS, RCLONE, litmusReport, rclone, rcloneRemote, runLitmus, snapshotTree, writeAwkwardTree } from '../support/davClients';
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
    if (server) await closeServer(server);
    if (h) await tearDown(h);
    fs.rmSync(work, { recursive: true, force: true });
  });

  it('litmus: basic and copymove all pass', async () => {
    const groups = ['basic', 'copymove'] as const;
    const all = await runLitmus(`http://127.0.0.1:${port}/dav/`, 'alice', secret, groups);
    process.stdout.write(`\nlitmus through the real engine\n${litmusReport(all, {}, groups)}\n`);
    for (const group of groups) expect([group, all.some((r) => r.group === group)]).toEqual([group, true]);
    expect(all.filter((r) => r.outcome === 'FAIL').map((r) => `${r.group}/${r.test}: ${r.detail}`)).toEqual([]);
  });

  it('rclone syncs a tree with a 256 MiB file up and back byte-identical, and the runtime finds it', async () => {
    const source = path.join(work, 'source');
    writeAwkwardTree(source, 256 * 1024 ** 2);
    const expected = snapshotTree(source);
    const env = await rcloneRemote(work, `http://127.0.0.1:${port}/dav/`, 'alice', secret);
    await rclone(['sync', source, 'dav:tree', '--create-empty-src-dirs'], env, 300_000);

    const back = path.join(work, 'back');
    await rclone(['sync', 'dav:tree', back, '--create-empty-src-dirs'], env, 300_000);
    expect(snapshotTree(back)).toEqual(expected);
    await rclone(['check', source, 'dav:tree'], env, 300_000);

    await settle(alice, 'start');
    const view = (await alice.get('/api/v1/runtime')).body as { id: string };
    const containerId = (h.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(view.id) as { container_id: string }).container_id;
    // The stand-in image has node and no shell.
    // Streamed: the runtime's memory limit is smaller than a whole read would need.
    const script = `const c=require('crypto'),f=require('fs'),t='${FILES_ROOT}/tree';const h=c.createHash('sha256');f.createReadStream(t+'/large.bin').on('data',(d)=>h.update(d)).on('end',()=>console.log(JSON.stringify({large:h.digest('hex'),unicode:f.readdirSync(t+'/héllo wörld')})))`;
    const seen = await execIn(containerId, ['node', '-e', script]);
    expect([seen.exitCode, seen.stderr]).toEqual([0, '']);
    expect(JSON.parse(seen.stdout)).toEqual({ large: expected.files['large.bin'], unicode: ['日本語のファイル.txt'] });
  });
});
