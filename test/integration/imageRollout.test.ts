/**
 * An image rollout on the REAL engine: a "new release" of the runtime image that never becomes
 * ready (the stand-in with its readiness failing, made locally) is tried on a canary, which goes
 * back to the image it ran with its files untouched, the reason and OpenClaw's log lines for the
 * administrator, and nobody else restarted; a good new image moves everyone, after a backup.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type TestAgent from 'supertest/lib/agent';
import { generateIdentity } from '../../src/backup/ageFormat';
import type { Rollout } from '../../src/http/apiTypes';
import { LABELS } from '../../src/docker/runtimeBackend';
import { docker, engineHarness, eventually, newInstanceId, STANDIN_IMAGE, tearDown, withDiagnostics, type EngineHarness } from '../support/engine';

jest.setTimeout(180_000);

const instance = newInstanceId();
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-rollout-'));
const keyFile = path.join(work, 'backup-key.txt');
fs.writeFileSync(keyFile, generateIdentity().text, { mode: 0o600 });
// Tags of this run only: made from the stand-in, removed at the end.
const BROKEN = `clawloops/runtime-standin:broken-${instance}`;
const GOOD = `clawloops/runtime-standin:next-${instance}`;

let h: EngineHarness;
let admin: TestAgent;
const members: Record<string, { client: TestAgent; userId: string }> = {};

/** A copy of the stand-in image with `env` baked in: a new "release" made without a registry. */
async function imageFrom(tag: string, env: string[]): Promise<void> {
  const container = await docker.createContainer({ Image: STANDIN_IMAGE, Labels: { [LABELS.instance]: instance } });
  try {
    const [repo, version] = tag.split(':');
    await container.commit({ repo, tag: version, changes: env.map((e) => `ENV ${e}`) });
  } finally {
    await container.remove({ force: true });
  }
}

beforeAll(async () => {
  await imageFrom(BROKEN, ['STANDIN_FAIL_READY=1']);
  await imageFrom(GOOD, ['STANDIN_RELEASE=next']);
  h = engineHarness({ instance, env: { CLAWLOOPS_BACKUP_KEY_FILE: keyFile, CLAWLOOPS_BACKUP_DIR: path.join(work, 'backups') }, runtimeSettings: { readyTimeoutMs: 8_000 } });
  await h.platform.runtimes.claimInstallation();
  admin = (await h.setupAdmin()).client;
  for (const name of ['alice', 'bruno']) {
    members[name] = await h.createMember(admin, name);
    const client = members[name]?.client as TestAgent;
    expect((await client.post('/api/v1/files/upload').attach('files', Buffer.from(`${name}'s notes`), { filename: 'notes.txt' })).status).toBe(201);
    const started = await client.post('/api/v1/runtime/start');
    await h.platform.runtimes.settled(started.body.runtime.id);
  }
});

afterAll(async () => {
  await tearDown(h);
  for (const tag of [BROKEN, GOOD]) await docker.getImage(tag).remove({ force: true }).catch(() => undefined);
  fs.rmSync(work, { recursive: true, force: true });
});

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

async function rollOut(body: object): Promise<Rollout> {
  expect((await admin.post('/api/v1/admin/runtimes/rollout').send(body)).status).toBe(202);
  return eventually(
    async () => {
      const { rollout } = (await admin.get('/api/v1/admin/runtimes/rollout')).body as { rollout: Rollout };
      return rollout.status === 'running' ? undefined : rollout;
    },
    'the rollout to finish',
    120_000,
    250,
  );
}

const view = (name: string) => h.platform.runtimes.viewForUser(members[name]?.userId ?? '');

it('a canary that never becomes ready on the new image is back on its own image, files untouched; the other runtime was never restarted', async () => {
  const brunoStartedAt = view('bruno').startedAt;
  const rollout = await rollOut({ image: BROKEN, canaryUserId: members.alice?.userId });
  expect(rollout.status).toBe('halted');
  expect(rollout.backupId).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{6}$/);
  const [canary, other] = rollout.items;
  expect(canary).toMatchObject({ username: 'alice', canary: true, status: 'rolled-back', previousImage: STANDIN_IMAGE, error: { code: 'READY_TIMEOUT' } });
  expect(canary?.error?.message).toMatch(/did not become ready within 8 s/);
  // What OpenClaw (the stand-in) said on the new image, for the administrator.
  expect(canary?.logTail ?? '').toMatch(/standin/);
  expect(other).toMatchObject({ username: 'bruno', status: 'skipped' });
  expect(view('alice')).toMatchObject({ state: 'running', image: STANDIN_IMAGE });
  expect(view('bruno')).toMatchObject({ state: 'running', image: STANDIN_IMAGE, startedAt: brunoStartedAt });
  expect((await admin.get('/api/v1/admin/settings')).body.image).toBe(STANDIN_IMAGE);
  const notes = await members.alice?.client.get('/api/v1/files/download?path=notes.txt');
  expect(notes?.text).toBe("alice's notes");
  // The backup taken before anything restarted is listed as such.
  const backups = (await admin.get('/api/v1/admin/backups')).body.items as { id: string; trigger: string }[];
  expect(backups.find((b) => b.id === rollout.backupId)).toMatchObject({ trigger: 'upgrade' });
});

it('a good new image moves every running runtime and becomes the configured image', async () => {
  const rollout = await rollOut({ image: GOOD });
  expect(rollout.status).toBe('succeeded');
  expect(rollout.items.map((i) => [i.username, i.status])).toEqual([
    ['alice', 'updated'],
    ['bruno', 'updated'],
  ]);
  for (const name of ['alice', 'bruno']) expect(view(name)).toMatchObject({ state: 'running', image: GOOD, pinnedImage: null, outdatedImage: false });
  expect((await admin.get('/api/v1/admin/settings')).body.image).toBe(GOOD);
  const notes = await members.bruno?.client.get('/api/v1/files/download?path=notes.txt');
  expect(notes?.text).toBe("bruno's notes");
});
