/**
 * Backup and full restore on the REAL engine (stand-in runtime image): an installation with two
 * members who have files (unicode names, a few MiB) and usage rows is backed up while it runs;
 * then its data directory and every one of its volumes are gone; the restore brings back the
 * accounts (their own passwords sign in), the files byte-identical, and the usage history. A
 * damaged part or the wrong key is refused before anything is written.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type TestAgent from 'supertest/lib/agent';
import { generateIdentity, parseIdentity } from '../../src/backup/ageFormat';
import { DATABASE_PART, volumePart } from '../../src/backup/backupFormat';
import { restoreDatabase } from '../../src/backup/restore';
import { NO_ORIGIN } from '../../src/domain/audit';
import { docker, engineHarness, eventually, listen, newInstanceId, signIn, SOCKET, STANDIN_IMAGE, STRONG_PASSWORD, sweep, type EngineHarness } from '../support/engine';
import { cleanUpProcesses, CLI, spawnNode } from '../support/processes';

jest.setTimeout(180_000);

const instance = newInstanceId();
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-backup-'));
const keyFile = path.join(work, 'backup-key.txt');
const key = generateIdentity();
fs.writeFileSync(keyFile, key.text, { mode: 0o600 });
const env = { CLAWLOOPS_BACKUP_KEY_FILE: keyFile, CLAWLOOPS_BACKUP_DIR: path.join(work, 'backups') };

const FILES = {
  alice: [
    { name: 'Ünïcödé notes — 笔记.md', content: Buffer.from('# remember\nthe café at 9\n') },
    { name: 'data.bin', content: randomBytes(3 * 1024 * 1024 + 17) },
  ],
  bruno: [{ name: 'plan.txt', content: Buffer.from('bruno was here') }],
};
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const binary = (res: NodeJS.ReadableStream, done: (err: Error | null, body: Buffer) => void) => {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () => done(null, Buffer.concat(chunks)));
};
const download = (client: TestAgent, file: string) =>
  client
    .get(`/api/v1/files/download?path=${encodeURIComponent(file)}`)
    .buffer(true)
    .parse(binary as unknown as Parameters<ReturnType<TestAgent['get']>['parse']>[0]);

let before: EngineHarness;
let after: EngineHarness | null = null;
let backupId = '';
let usageBefore: unknown[] = [];

afterAll(async () => {
  await cleanUpProcesses();
  for (const h of [before, after]) {
    if (!h) continue;
    h.platform.watcher.close();
    await h.platform.runtimes.drain(10_000);
    await h.platform.volumes.closeAll().catch(() => 0);
    h.close();
  }
  await sweep(instance);
  fs.rmSync(work, { recursive: true, force: true });
});

test('a running installation is backed up: every part encrypted to the key, readable by hand with age', async () => {
  before = engineHarness({ instance, env });
  await before.platform.runtimes.claimInstallation();
  const { client: admin } = await before.setupAdmin();
  for (const [username, files] of Object.entries(FILES)) {
    const { client } = await before.createMember(admin, username);
    for (const f of files) expect((await client.post('/api/v1/files/upload').attach('files', f.content, { filename: f.name })).status).toBe(201);
  }
  // Alice's runtime runs during the backup; Bruno's was never started.
  const userId = before.platform.users.findByUsername('alice').id;
  const started = await before.platform.runtimes.start({ id: userId, username: 'alice' }, userId, NO_ORIGIN);
  await before.platform.runtimes.settled(started.runtime.id ?? '');
  before.platform.ledger.append({ at: Date.now(), userId, username: 'alice', runtimeId: started.runtime.id, endpoint: 'chat/completions', model: 'm', streamed: false, status: 'ok', httpStatus: 200, promptTokens: 11, completionTokens: 7, costMicrodollars: 42, latencyMs: 5, estimated: false });
  before.platform.ledger.flush();
  usageBefore = before.platform.db.prepare('SELECT user_id, model, prompt_tokens, completion_tokens, cost_microdollars FROM llm_usage').all();

  // Alice's runtime is frozen while its volume is read (one moment), shown as running throughout.
  const containerId = (before.platform.db.prepare('SELECT container_id FROM runtimes WHERE user_id = ?').get(userId) as { container_id: string }).container_id;
  const events = (await docker.getEvents({ filters: JSON.stringify({ container: [containerId], event: ['pause', 'unpause'] }) })) as NodeJS.ReadableStream & { destroy(): void };
  const seen: string[] = [];
  events.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) seen.push((JSON.parse(line) as { Action: string }).Action);
  });
  const states = new Set<string>();
  const watching = setInterval(() => states.add(before.platform.runtimes.viewForUser(userId).state), 5);
  const progress: string[] = [];
  const summary = await before.platform.backups.create((p) => progress.push(`${p.step}:${p.partsDone}/${p.partsTotal}`));
  clearInterval(watching);
  await eventually(() => (seen.length >= 2 ? true : undefined), 'the pause and unpause events');
  events.destroy();
  expect(seen).toEqual(['pause', 'unpause']);
  expect([...states]).toEqual(['running']);
  expect((await docker.getContainer(containerId).inspect()).State).toMatchObject({ Running: true, Paused: false });
  backupId = summary.id;
  expect(summary.users).toEqual(['admin', 'alice', 'bruno']);
  expect(summary.parts).toBe(4);
  expect(progress[0]).toBe('database:0/4');
  expect(progress.at(-1)).toBe('finishing:4/4');
  const verified = await before.platform.backups.verify(backupId);
  expect(verified.parts.map((p) => p.name).sort()).toEqual(expect.arrayContaining([DATABASE_PART]));
  expect(await before.platform.backups.list()).toEqual([expect.objectContaining({ id: backupId, readable: true, parts: 4 })]);

  // By hand, without ClawLoops: age decrypts the volume part to a tar holding Alice's file.
  const dir = path.join(env.CLAWLOOPS_BACKUP_DIR, backupId);
  const alicePart = verified.manifest.parts.find((p) => p.username === 'alice');
  const tar = execFileSync('age', ['-d', '-i', keyFile, path.join(dir, volumePart(alicePart?.runtimeId ?? ''))], { maxBuffer: 1 << 26 });
  const listing = execFileSync('tar', ['-t'], { input: tar }).toString();
  expect(listing).toContain('.openclaw/workspace/data.bin');
  expect(listing).not.toContain('.clawloops-staging/');
  // Nothing a restore re-issues is in the database part: no sessions, no model keys.
  const db = execFileSync('age', ['-d', '-i', keyFile, path.join(dir, DATABASE_PART)], { maxBuffer: 1 << 26 });
  const copy = path.join(work, 'copy.sqlite');
  fs.writeFileSync(copy, db);
  const Database = (await import('better-sqlite3')).default;
  const opened = new Database(copy, { readonly: true });
  expect(opened.prepare('SELECT COUNT(*) AS n FROM sessions').get()).toEqual({ n: 0 });
  expect(opened.prepare('SELECT COUNT(*) AS n FROM runtimes WHERE model_key_hash IS NOT NULL').get()).toEqual({ n: 0 });
  opened.close();
});

test('administrators start, follow, list and verify backups over the API; members cannot', async () => {
  const { client: admin } = await (async () => {
    const client = before.client();
    expect((await client.post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD })).status).toBe(200);
    return { client };
  })();
  const started = await admin.post('/api/v1/admin/backups');
  expect(started.status).toBe(202);
  expect((await admin.post('/api/v1/admin/backups')).body.error.code).toBe('BACKUP_RUNNING');
  let listed = (await admin.get('/api/v1/admin/backups')).body;
  while (listed.running !== null) listed = (await admin.get('/api/v1/admin/backups')).body;
  expect(listed.last).toMatchObject({ ok: true, error: null });
  expect(listed.items.map((b: { id: string }) => b.id)).toEqual(expect.arrayContaining([backupId, listed.last.id]));
  const verified = await admin.post(`/api/v1/admin/backups/${listed.last.id}/verify`);
  expect(verified.status).toBe(200);
  expect(verified.body).toMatchObject({ ok: true, users: ['admin', 'alice', 'bruno'] });
  expect((await admin.post('/api/v1/admin/backups/../../etc/verify')).status).toBe(404);
  expect((await admin.post('/api/v1/admin/backups/not-an-id/verify')).body.error.code).toBe('VALIDATION_FAILED');
  expect((await admin.post('/api/v1/admin/backups/20990101T000000Z-abcdef/verify')).status).toBe(404);
  const member = before.client();
  expect((await member.post('/api/v1/auth/login').send({ username: 'bruno', password: STRONG_PASSWORD })).status).toBe(200);
  expect((await member.get('/api/v1/admin/backups')).status).toBe(403);
  expect((await member.post('/api/v1/admin/backups')).status).toBe(403);
  // Only the first backup goes on to the restore below.
  fs.rmSync(path.join(env.CLAWLOOPS_BACKUP_DIR, listed.last.id), { recursive: true });
});

test('deleting an account keeps a copy of its workspace first (listed, verifiable, readable with age); a purge keeps none', async () => {
  const admin = before.client();
  expect((await admin.post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD })).status).toBe(200);
  const carol = await before.createMember(admin, 'carol');
  const dave = await before.createMember(admin, 'dave');
  expect((await carol.client.post('/api/v1/files/upload').attach('files', Buffer.from('carol keeps this'), { filename: 'carol.txt' })).status).toBe(201);
  const countOffboarding = async () => ((await admin.get('/api/v1/admin/backups')).body.items as { trigger: string }[]).filter((b) => b.trigger === 'offboarding').length;
  // A refused delete (oneself) takes no copy either.
  const adminId = before.platform.users.findByUsername('admin').id;
  expect((await admin.delete(`/api/v1/admin/users/${adminId}`)).status).toBe(409);
  expect(await countOffboarding()).toBe(0);

  expect((await admin.delete(`/api/v1/admin/users/${carol.userId}`)).status).toBe(204);
  const copies = ((await admin.get('/api/v1/admin/backups')).body.items as { id: string; trigger: string; users: string[]; parts: number }[]).filter((b) => b.trigger === 'offboarding');
  expect(copies).toEqual([expect.objectContaining({ users: ['carol'], parts: 1 })]);
  const copy = copies[0]?.id ?? '';
  expect((await admin.post(`/api/v1/admin/backups/${copy}/verify`)).body).toMatchObject({ ok: true, users: ['carol'] });
  const part = fs.readdirSync(path.join(env.CLAWLOOPS_BACKUP_DIR, copy)).find((n) => n.startsWith('volume-')) ?? '';
  const tar = execFileSync('age', ['-d', '-i', keyFile, path.join(env.CLAWLOOPS_BACKUP_DIR, copy, part)], { maxBuffer: 1 << 26 });
  expect(execFileSync('tar', ['-xO', '.openclaw/workspace/carol.txt'], { input: tar }).toString()).toBe('carol keeps this');
  expect((await admin.get(`/api/v1/admin/audit?action=backup.offboarding`)).body.items[0]).toMatchObject({ target: { id: copy } });
  // Not a whole installation: a full restore refuses it.
  await expect(restoreDatabase(path.join(env.CLAWLOOPS_BACKUP_DIR, copy), parseIdentity(key.text), path.join(work, 'not-from-a-copy'))).rejects.toThrow(/one deleted account/);

  expect((await admin.delete(`/api/v1/admin/users/${dave.userId}?purge=true`)).status).toBe(204);
  expect(await countOffboarding()).toBe(1);
  expect((await admin.delete(`/api/v1/admin/users/${dave.userId}?purge=maybe`)).status).toBe(400);
  fs.rmSync(path.join(env.CLAWLOOPS_BACKUP_DIR, copy), { recursive: true });
});

test('a damaged part or another key is refused before anything is written', async () => {
  const dir = path.join(env.CLAWLOOPS_BACKUP_DIR, backupId);
  const target = path.join(work, 'refused-data');
  await expect(restoreDatabase(dir, generateIdentity().identity, target)).rejects.toThrow(/not encrypted to the configured key/);
  const damagedDir = path.join(work, 'damaged');
  fs.cpSync(dir, damagedDir, { recursive: true });
  const part = fs.readdirSync(damagedDir).find((n) => n.startsWith('volume-')) ?? '';
  const bytes = fs.readFileSync(path.join(damagedDir, part));
  bytes.writeUInt8((bytes.readUInt8(bytes.length - 100) ^ 0xff) & 0xff, bytes.length - 100);
  fs.writeFileSync(path.join(damagedDir, part), bytes);
  await expect(restoreDatabase(damagedDir, parseIdentity(key.text), target)).rejects.toThrow(/does not match its SHA-256|altered/);
  expect(fs.existsSync(path.join(target, 'clawloops.db'))).toBe(false);
});

test('onto an empty data directory and an engine without the volumes, everything comes back', async () => {
  before.platform.watcher.close();
  await before.platform.runtimes.drain(10_000);
  await before.platform.volumes.closeAll();
  before.close();
  await sweep(instance);
  expect((await docker.listVolumes({ filters: JSON.stringify({ label: [`io.clawloops.instance=${instance}`] }) })).Volumes ?? []).toEqual([]);

  // The operator's command, the built CLI, as on a fresh machine with the server stopped.
  const dataDir = path.join(work, 'restored-data');
  const dir = path.join(env.CLAWLOOPS_BACKUP_DIR, backupId);
  const cli = spawnNode('admin CLI restore', CLI, ['restore', dir], {
    ...env,
    CLAWLOOPS_DATA_DIR: dataDir,
    CLAWLOOPS_INSTANCE: instance,
    CLAWLOOPS_RUNTIME_IMAGE: STANDIN_IMAGE,
    CLAWLOOPS_DOCKER_SOCKET: SOCKET,
  });
  expect(await cli.waitForExit()).toEqual({ code: 0, signal: null });
  expect(cli.stdout).toMatch(/Database restored into .*: 3 account\(s\)/);
  expect(cli.stdout).toMatch(/Restored 3 volume\(s\)/);
  after = engineHarness({ instance, dataDir, env });
  await after.platform.runtimes.claimInstallation();
  await after.platform.watcher.start();

  const server = await listen(after);
  try {
    for (const [username, files] of Object.entries(FILES)) {
      const client = after.client();
      expect((await client.post('/api/v1/auth/login').send({ username, password: STRONG_PASSWORD })).status).toBe(200);
      for (const f of files) {
        const res = await download(client, f.name);
        expect(res.status).toBe(200);
        expect(sha(res.body as Buffer)).toBe(sha(f.content));
      }
    }
    expect(await signIn(server, 'admin')).toMatch(/=/);
  } finally {
    await server.close();
  }
  expect(after.platform.db.prepare('SELECT user_id, model, prompt_tokens, completion_tokens, cost_microdollars FROM llm_usage').all()).toEqual(usageBefore);
  // Alice's runtime starts again on the restored volume, with new keys.
  const userId = after.platform.users.findByUsername('alice').id;
  const started = after.platform.runtimes.start({ id: userId, username: 'alice' }, userId, NO_ORIGIN);
  await after.platform.runtimes.settled(started.runtime.id ?? '');
  expect(after.platform.runtimes.viewForUser(userId).state).toBe('running');
});
