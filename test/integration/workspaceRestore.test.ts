/**
 * One member's workspace back to a backup, on the REAL engine (stand-in runtime image): the
 * running runtime is stopped and held, the files become exactly what the backup holds (what was
 * added since is gone, what was deleted or changed is back), the previous content is kept until
 * the swap and gone after it, the runtime starts again, and it is audited. A damaged part fails
 * the restore and leaves the workspace exactly as it was. Only administrators restore.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type TestAgent from 'supertest/lib/agent';
import { generateIdentity } from '../../src/backup/ageFormat';
import { volumePart } from '../../src/backup/backupFormat';
import { LABELS } from '../../src/docker/runtimeBackend';
import { NO_ORIGIN } from '../../src/domain/audit';
import { docker, engineHarness, eventually, newInstanceId, STANDIN_IMAGE, tearDown, volumeEntries, withDiagnostics, type EngineHarness } from '../support/engine';

jest.setTimeout(180_000);

const instance = newInstanceId();
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-restore-'));
const keyFile = path.join(work, 'backup-key.txt');
fs.writeFileSync(keyFile, generateIdentity().text, { mode: 0o600 });
const backupDir = path.join(work, 'backups');

let h: EngineHarness;
let admin: TestAgent;
let alice: { client: TestAgent; userId: string };
let backupId = '';
const BIG = randomBytes(5 * 1024 * 1024 + 3);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  h = engineHarness({ instance, env: { CLAWLOOPS_BACKUP_KEY_FILE: keyFile, CLAWLOOPS_BACKUP_DIR: backupDir } });
  await h.platform.runtimes.claimInstallation();
  admin = (await h.setupAdmin()).client;
  alice = await h.createMember(admin, 'alice');
});

afterAll(async () => {
  await tearDown(h);
  fs.rmSync(work, { recursive: true, force: true });
});

const binary = (res: NodeJS.ReadableStream, done: (err: Error | null, body: Buffer) => void) => {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => done(null, Buffer.concat(chunks)));
};
const download = async (file: string): Promise<{ status: number; body: Buffer }> => {
  const res = await alice.client
    .get(`/api/v1/files/download?path=${encodeURIComponent(file)}`)
    .buffer(true)
    .parse(binary as unknown as Parameters<ReturnType<TestAgent['get']>['parse']>[0]);
  return { status: res.status, body: res.body as Buffer };
};
const upload = async (name: string, content: Buffer) => expect((await alice.client.post('/api/v1/files/upload?overwrite=1').attach('files', content, { filename: name })).status).toBe(201);
const names = async () => ((await alice.client.get('/api/v1/files?path=')).body.entries as { name: string }[]).map((e) => e.name).sort();

async function aliceVolume(): Promise<string> {
  const { Volumes } = await docker.listVolumes({ filters: JSON.stringify({ label: [`${LABELS.instance}=${instance}`, `${LABELS.userId}=${alice.userId}`] }) });
  return Volumes?.[0]?.Name ?? '';
}

async function restore(id: string): Promise<{ status: string; error: { code: string; message: string } | null }> {
  const res = await admin.post(`/api/v1/admin/backups/${id}/restore`).send({ userId: alice.userId });
  expect(res.status).toBe(202);
  expect(res.body.operation).toMatchObject({ kind: 'restore' });
  await h.platform.runtimes.settledForUser(alice.userId);
  return h.platform.runtimeHub.latestOperation(res.body.runtime.id)?.snapshot ?? { status: 'missing', error: null };
}

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

it('a running workspace goes back to the backup: added files gone, deleted and changed ones back, runtime stopped then startable, audited', async () => {
    await upload('notes — 笔记.md', Buffer.from('as in the backup'));
    await upload('big.bin', BIG);
    const started = h.platform.runtimes.start({ id: alice.userId, username: 'alice' }, alice.userId, NO_ORIGIN);
    await h.platform.runtimes.settled(started.runtime.id ?? '');
    backupId = (await h.platform.backups.create()).id;

    // After the backup: a new file, a deleted one, a changed one.
    await upload('after-the-backup.txt', Buffer.from('should not survive the restore'));
    await upload('notes — 笔记.md', Buffer.from('changed after the backup'));
    expect((await alice.client.delete('/api/v1/files?path=big.bin')).status).toBe(200);
    expect(await names()).toEqual(['after-the-backup.txt', 'notes — 笔记.md']);

    // Members cannot restore, not even their own workspace.
    expect((await alice.client.post(`/api/v1/admin/backups/${backupId}/restore`).send({ userId: alice.userId })).status).toBe(403);

    const op = await restore(backupId);
    expect(op).toMatchObject({ status: 'succeeded', error: null });
    expect(h.platform.runtimes.viewForUser(alice.userId).state).toBe('stopped');
    expect(await names()).toEqual(['big.bin', 'notes — 笔记.md']);
    expect((await download('notes — 笔记.md')).body.toString()).toBe('as in the backup');
    expect(sha((await download('big.bin')).body)).toBe(sha(BIG));

    // Nothing of the restore is left in the volume, and nothing it wrote is root's or set-id.
    const entries = await volumeEntries(await aliceVolume(), instance);
    expect(entries.filter((e) => e.path.startsWith('.clawloops-restore'))).toEqual([]);
    expect(entries.filter((e) => e.uid !== 1000 || e.gid !== 1000 || (e.mode & 0o7000) !== 0)).toEqual([]);

    const again = h.platform.runtimes.start({ id: alice.userId, username: 'alice' }, alice.userId, NO_ORIGIN);
    expect((await h.platform.runtimes.settled(again.runtime.id ?? ''), h.platform.runtimes.viewForUser(alice.userId).state)).toBe('running');
    const audit = (await admin.get('/api/v1/admin/audit?action=workspace.restore')).body.items[0];
    expect(audit).toMatchObject({ target: { label: 'alice' }, detail: { backupId } });
    const restores = (await admin.get('/api/v1/admin/backups/restores')).body.items;
    expect(restores[0]).toMatchObject({ username: 'alice', backupId, phase: 'done', actor: 'admin' });
});

it('a damaged part fails the restore and leaves the workspace exactly as it was', async () => {
  await upload('kept.txt', Buffer.from('made after the backup, kept because the restore fails'));
  const before = await names();
  const beforeEntries = (await volumeEntries(await aliceVolume(), instance)).filter((e) => !e.path.startsWith('.clawloops-staging/'));
  // A copy of the backup with one byte of Alice's part flipped near its end: found only when the
  // whole part has been read, after the engine unpacked most of it.
  const damagedId = backupId.replace(/-[0-9a-f]{6}$/, '-dddddd');
  fs.cpSync(path.join(backupDir, backupId), path.join(backupDir, damagedId), { recursive: true });
  const runtimeId = h.platform.runtimes.runtimeIdForUser(alice.userId) ?? '';
  const part = path.join(backupDir, damagedId, volumePart(runtimeId));
  const bytes = fs.readFileSync(part);
  bytes.writeUInt8(bytes.readUInt8(bytes.length - 100) ^ 0xff, bytes.length - 100);
  fs.writeFileSync(part, bytes);

  const op = await restore(damagedId);
  expect(op.status).toBe('failed');
  expect(op.error?.code).toBe('BACKUP_PART_CORRUPT');
  expect(op.error?.message).toMatch(/Nothing in the workspace was changed/);
  expect(await names()).toEqual(before);
  await eventually(async () => {
    const after = (await volumeEntries(await aliceVolume(), instance)).filter((e) => !e.path.startsWith('.clawloops-staging/'));
    return JSON.stringify(after) === JSON.stringify(beforeEntries) ? true : undefined;
  }, 'the volume to hold exactly what it held before the failed restore');
  expect((await admin.get('/api/v1/admin/backups/restores')).body.items[0]).toMatchObject({ phase: 'failed', error: expect.stringMatching(/SHA-256/) });
});

it('refusals: an unknown backup, a backup taken before the account existed, a malformed request', async () => {
  expect((await admin.post('/api/v1/admin/backups/20990101T000000Z-abcdef/restore').send({ userId: alice.userId })).body.error.code).toBe('BACKUP_NOT_FOUND');
  expect((await admin.post(`/api/v1/admin/backups/${backupId}/restore`).send({ userId: 'nope' })).status).toBe(400);
  expect((await admin.post(`/api/v1/admin/backups/${backupId}/restore`).send({})).status).toBe(400);
  const bruno = await h.createMember(admin, 'bruno');
  // Bruno's account did not exist when the backup was taken.
  expect((await admin.post(`/api/v1/admin/backups/${backupId}/restore`).send({ userId: bruno.userId })).body.error.code).toBe('BACKUP_HAS_NO_WORKSPACE');
});

/** Runs a Node script as uid 1000 in a throwaway container with Alice's volume at /v (what the file helper would see). */
async function inVolume(script: string): Promise<void> {
  const container = await docker.createContainer({
    Image: STANDIN_IMAGE,
    User: '1000:1000',
    Cmd: ['/usr/local/bin/node', '-e', script],
    Labels: { [LABELS.instance]: instance, 'io.clawloops.test': 'volume-writer' },
    Healthcheck: { Test: ['NONE'] },
    HostConfig: { NetworkMode: 'none', Mounts: [{ Type: 'volume', Source: await aliceVolume(), Target: '/v' }] },
  });
  try {
    await container.start();
    expect(((await container.wait()) as { StatusCode: number }).StatusCode).toBe(0);
  } finally {
    await container.remove({ force: true }).catch(() => undefined);
  }
}

it('a restore the server crashed in the middle of swapping is finished before the runtime starts again', async () => {
  const runtimeId = h.platform.runtimes.runtimeIdForUser(alice.userId) ?? '';
  const stopped = h.platform.runtimes.stop({ id: alice.userId, username: 'alice' }, alice.userId, NO_ORIGIN);
  await h.platform.runtimes.settled(stopped.runtime.id ?? '');
  await h.platform.volumes.closeAll();
  // The state a crash leaves mid-install: the previous content aside, part of the restored tree in place.
  const id = 'crashed-restore-0001';
  await inVolume(`
    const fs = require('fs');
    const base = '/v/.clawloops-restore';
    fs.mkdirSync(base + '/${id}/workspace', { recursive: true });
    fs.writeFileSync(base + '/${id}/workspace/from-the-restore.txt', 'restored');
    fs.writeFileSync(base + '/${id}/openclaw.json', '{}');
    fs.mkdirSync(base + '/${id}.previous');
    for (const name of fs.readdirSync('/v')) if (!name.startsWith('.clawloops-')) fs.renameSync('/v/' + name, base + '/${id}.previous/' + name);
    fs.writeFileSync(base + '/${id}.journal', JSON.stringify({ phase: 'install' }));
    fs.renameSync(base + '/${id}/openclaw.json', '/v/openclaw.json');
  `);
  h.platform.db
    .prepare("INSERT INTO workspace_restores (id, user_id, runtime_id, username, backup_id, phase, started_at) VALUES (?, ?, ?, 'alice', ?, 'swapping', ?)")
    .run(id, alice.userId, runtimeId, backupId, Date.now());

  const started = h.platform.runtimes.start({ id: alice.userId, username: 'alice' }, alice.userId, NO_ORIGIN);
  await h.platform.runtimes.settled(started.runtime.id ?? '');
  expect(h.platform.runtimes.viewForUser(alice.userId).state).toBe('running');
  expect(await names()).toEqual(['from-the-restore.txt']);
  expect((await admin.get('/api/v1/admin/backups/restores')).body.items.find((r: { id: string }) => r.id === id)).toMatchObject({ phase: 'done' });
  expect((await volumeEntries(await aliceVolume(), instance)).filter((e) => e.path.startsWith('.clawloops-restore'))).toEqual([]);
});
