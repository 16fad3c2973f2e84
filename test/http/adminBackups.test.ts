/**
 * The admin backup API's edges without an engine: the schedule (read, set, validated, audited),
 * a platform without a backup key (every backup call says how to configure one), members kept
 * out, and bad ids. Backups themselves run against the real engine in
 * test/integration/backupRestore.test.ts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateIdentity } from '../../src/backup/ageFormat';
import { FakeWorkspaceVolumes } from '../support/fakeWorkspaceVolumes';
import { createHarness, errorCode, type Harness } from '../support/harness';

let h: Harness;
afterEach(() => h.close());

test('the schedule: off by default, set and read back, bad values refused with the field named, audited', async () => {
  h = createHarness();
  const { client: admin } = await h.setupAdmin();
  expect((await admin.get('/api/v1/admin/backups/schedule')).body).toEqual({ enabled: false, hourUtc: 3, keepDaily: 7, keepWeekly: 4 });
  const set = await admin.put('/api/v1/admin/backups/schedule').send({ enabled: true, hourUtc: 2, keepDaily: 14, keepWeekly: 8 });
  expect(set.status).toBe(200);
  expect((await admin.get('/api/v1/admin/backups/schedule')).body).toEqual({ enabled: true, hourUtc: 2, keepDaily: 14, keepWeekly: 8 });
  for (const bad of [{ enabled: true, hourUtc: 24, keepDaily: 7, keepWeekly: 4 }, { enabled: true, hourUtc: 3, keepDaily: 0, keepWeekly: 4 }, { enabled: 'yes', hourUtc: 3, keepDaily: 7, keepWeekly: 4 }, { enabled: true, hourUtc: 3, keepDaily: 7, keepWeekly: 4, extra: 1 }]) {
    const res = await admin.put('/api/v1/admin/backups/schedule').send(bad);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('VALIDATION_FAILED');
  }
  expect((await admin.get('/api/v1/admin/audit?action=backup.schedule')).body.items[0]).toMatchObject({ detail: { after: { hourUtc: 2 } } });
});

test('without a backup key every backup call answers 409 BACKUP_KEY_MISSING with the way to configure one', async () => {
  h = createHarness();
  const { client: admin } = await h.setupAdmin();
  const adminId = h.platform.users.findByUsername('admin').id;
  for (const res of [
    await admin.post('/api/v1/admin/backups'),
    await admin.get('/api/v1/admin/backups'),
    await admin.post('/api/v1/admin/backups/20261206T030000Z-abcdef/verify'),
    await admin.post('/api/v1/admin/backups/20261206T030000Z-abcdef/restore').send({ userId: adminId }),
  ]) {
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: 'BACKUP_KEY_MISSING', message: expect.stringContaining('CLAWLOOPS_BACKUP_KEY_FILE') });
  }
});

test('members get 403 everywhere; unknown and malformed ids are 404 and 400', async () => {
  h = createHarness();
  const { client: admin } = await h.setupAdmin();
  const { client: member } = await h.createMember(admin, 'alice');
  for (const res of [
    await member.get('/api/v1/admin/backups'),
    await member.post('/api/v1/admin/backups'),
    await member.get('/api/v1/admin/backups/schedule'),
    await member.delete('/api/v1/admin/backups/20261206T030000Z-abcdef'),
    await member.get('/api/v1/admin/backups/restores'),
    await member.post('/api/v1/admin/backups/20261206T030000Z-abcdef/restore').send({}),
  ]) {
    expect(res.status).toBe(403);
  }
  expect((await admin.delete('/api/v1/admin/backups/20261206T030000Z-abcdef')).status).toBe(404);
  expect(errorCode(await admin.delete('/api/v1/admin/backups/..%2F..%2Fetc'))).toBe('VALIDATION_FAILED');
});

test('a backup folder that cannot be written keeps nothing from starting; the backup fails saying which folder', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'backup-key-'));
  const keyFile = path.join(dir, 'key.txt');
  fs.writeFileSync(keyFile, generateIdentity().text, { mode: 0o600 });
  h = createHarness({ env: { CLAWLOOPS_BACKUP_KEY_FILE: keyFile, CLAWLOOPS_BACKUP_DIR: '/dev/null/backups' } });
  const { client: admin } = await h.setupAdmin();
  expect((await admin.get('/api/v1/admin/backups')).body).toMatchObject({ items: [], running: null, last: null });
  expect((await admin.post('/api/v1/admin/backups')).status).toBe(202);
  let listed = (await admin.get('/api/v1/admin/backups')).body;
  while (listed.running !== null || listed.last === null) listed = (await admin.get('/api/v1/admin/backups')).body;
  expect(listed.last).toMatchObject({ ok: false, error: { code: 'BACKUP_FOLDER_UNUSABLE', message: expect.stringContaining('/dev/null/backups') } });
  fs.rmSync(dir, { recursive: true });
});

test('while a workspace is held for a restore its files answer 503 with the reason; other workspaces are untouched', async () => {
  const volumeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-gate-'));
  // Volumes in a folder (no engine): nothing of this test may land on a real engine.
  h = createHarness({ workspaceVolumes: new FakeWorkspaceVolumes(volumeDir) });
  const { client: admin } = await h.setupAdmin();
  const alice = await h.createMember(admin, 'alice');
  const bruno = await h.createMember(admin, 'bruno');
  const release = h.platform.volumes.hold(alice.userId, 'This workspace is being restored from a backup.');
  const refused = await alice.client.get('/api/v1/files?path=');
  expect(refused.status).toBe(503);
  expect(refused.body.error).toEqual({ code: 'FILES_UNAVAILABLE', message: 'This workspace is being restored from a backup.' });
  expect((await bruno.client.get('/api/v1/files?path=')).status).toBe(200);
  // A backup waits for the held volume instead of reading it mid-swap.
  let freed = false;
  const waiting = h.platform.volumes.free(alice.userId).then(() => (freed = true));
  await new Promise((resolve) => setImmediate(resolve));
  expect(freed).toBe(false);
  release();
  await waiting;
  expect((await alice.client.get('/api/v1/files?path=')).status).toBe(200);
  fs.rmSync(volumeDir, { recursive: true, force: true });
});
