/**
 * Image rollouts with an in-memory provisioner at our own interface (images cannot be pulled on
 * our machines, and a broken image is a switch here): running runtimes move one at a time, each
 * must come up on the new image or goes back to its previous one and is held there; a failing
 * canary stops the rollout before anyone else is touched. The same on the real engine with a
 * broken image: test/integration/imageRollout.test.ts.
 */
import type TestAgent from 'supertest/lib/agent';
import type { Rollout } from '../../src/http/apiTypes';
import { eventually } from '../support/eventually';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { createHarness, errorCode, type Harness } from '../support/harness';

const IMAGE = 'ghcr.io/openclaw/openclaw:2026.9.6';
const NEXT = 'ghcr.io/openclaw/openclaw:2026.10.1';
const BROKEN = 'ghcr.io/openclaw/openclaw:2026.10.2-broken';
let h: Harness;
let backend: FakeProvisioner;
let admin: TestAgent;
const ids: Record<string, string> = {};

beforeEach(async () => {
  backend = new FakeProvisioner();
  for (const image of [IMAGE, NEXT, BROKEN]) backend.images.add(image);
  h = createHarness({ runtimeProvisioner: backend, runtimeProbe: alwaysReadyProbe, runtimeSettings: { image: IMAGE } });
  admin = (await h.setupAdmin()).client;
  for (const name of ['alice', 'bruno', 'carol']) {
    const member = await h.createMember(admin, name);
    ids[name] = member.userId;
    const started = await member.client.post('/api/v1/runtime/start');
    await h.platform.runtimes.settled(started.body.runtime.id);
  }
});

afterEach(async () => {
  await eventually(() => (h.platform.rollout.current?.status === 'running' ? undefined : true), 'the rollout to end');
  await h.platform.runtimes.drain(5_000);
  h.close();
});

async function rollOut(body: object): Promise<Rollout> {
  const res = await admin.post('/api/v1/admin/runtimes/rollout').send(body);
  expect(res.status).toBe(202);
  return eventually(async () => {
    const { rollout } = (await admin.get('/api/v1/admin/runtimes/rollout')).body as { rollout: Rollout };
    return rollout.status === 'running' ? undefined : rollout;
  }, 'the rollout to finish');
}

const imageOf = (name: string) => h.platform.runtimes.viewForUser(ids[name] ?? '').image;
const configured = async () => (await admin.get('/api/v1/admin/settings')).body.image as string;

test('every running runtime moves to the new image, canary first; the new image becomes the configured one', async () => {
  const rollout = await rollOut({ image: NEXT, canaryUserId: ids.carol });
  expect(rollout).toMatchObject({ status: 'succeeded', backupId: null, error: null });
  expect(rollout.items.map((i) => [i.username, i.canary, i.status, i.previousImage])).toEqual([
    ['carol', true, 'updated', IMAGE],
    ['alice', false, 'updated', IMAGE],
    ['bruno', false, 'updated', IMAGE],
  ]);
  // Without a backup key the administrator is told that no backup was taken.
  expect(rollout.notes.join(' ')).toMatch(/No backup key/);
  for (const name of ['alice', 'bruno', 'carol']) expect(imageOf(name)).toBe(NEXT);
  expect(await configured()).toBe(NEXT);
  expect(h.platform.runtimes.listViews().every((v) => v.pinnedImage === null && !v.outdatedImage)).toBe(true);
  const audit = (await admin.get('/api/v1/admin/audit?action=runtime.rollout.start')).body.items[0];
  expect(audit).toMatchObject({ actor: { username: 'admin' }, detail: { image: NEXT, runtimes: 3, canary: 'carol' } });
});

test('a canary that fails on the new image goes back to its image and nobody else is touched', async () => {
  backend.exitsAtStart = (instance) => instance.image === BROKEN;
  const rollout = await rollOut({ image: BROKEN, canaryUserId: ids.bruno });
  expect(rollout.status).toBe('halted');
  const [canary, ...others] = rollout.items;
  expect(canary).toMatchObject({ username: 'bruno', status: 'rolled-back', error: { code: 'RUNTIME_EXITED' } });
  expect(others.map((i) => i.status)).toEqual(['skipped', 'skipped']);
  expect(rollout.notes.join(' ')).toContain(`The configured image stays ${IMAGE}`);
  for (const name of ['alice', 'bruno', 'carol']) {
    expect(imageOf(name)).toBe(IMAGE);
    expect(h.platform.runtimes.viewForUser(ids[name] ?? '').state).toBe('running');
  }
  expect(await configured()).toBe(IMAGE);
  expect((await admin.get('/api/v1/admin/audit?action=runtime.rollout.rollback')).body.items[0]).toMatchObject({ target: { label: 'bruno' }, detail: { image: BROKEN, rolledBack: true } });
});

test('one runtime failing after the first succeeded is put back and held on its image; the rest move on', async () => {
  backend.exitsAtStart = (instance) => instance.image === NEXT && instance.owner.username === 'bruno';
  const rollout = await rollOut({ image: NEXT });
  expect(rollout.status).toBe('partial');
  expect(rollout.items.map((i) => [i.username, i.status])).toEqual([
    ['alice', 'updated'],
    ['bruno', 'rolled-back'],
    ['carol', 'updated'],
  ]);
  expect(await configured()).toBe(NEXT);
  const bruno = h.platform.runtimes.viewForUser(ids.bruno ?? '');
  // Held on the image it ran: not marked outdated, and a restart keeps it there.
  expect(bruno).toMatchObject({ state: 'running', image: IMAGE, pinnedImage: IMAGE, outdatedImage: false });
  const restarted = h.platform.runtimes.restart({ id: ids.bruno ?? '', username: 'bruno' }, ids.bruno ?? '', { ip: null, userAgent: null });
  await h.platform.runtimes.settled(restarted.runtime.id ?? '');
  expect(imageOf('bruno')).toBe(IMAGE);
  // Once the image is fixed, a new rollout of it moves Bruno too and ends his hold.
  backend.exitsAtStart = () => false;
  const again = await rollOut({ image: NEXT });
  expect(again.items.map((i) => [i.username, i.status])).toEqual([['bruno', 'updated']]);
  expect(h.platform.runtimes.viewForUser(ids.bruno ?? '')).toMatchObject({ image: NEXT, pinnedImage: null });
});

test('an image that is not here and cannot be fetched changes nothing', async () => {
  backend.pullScript = 'manifest unknown';
  const rollout = await rollOut({ image: 'ghcr.io/openclaw/openclaw:2099.1.1' });
  expect(rollout).toMatchObject({ status: 'failed', error: { code: 'IMAGE_UNAVAILABLE' } });
  expect(rollout.items.every((i) => i.status === 'pending')).toBe(true);
  expect(await configured()).toBe(IMAGE);
  for (const name of ['alice', 'bruno', 'carol']) expect(imageOf(name)).toBe(IMAGE);
});

test('refusals: one rollout at a time, a canary that is not running, bad input, members', async () => {
  let open!: () => void;
  backend.startGate = new Promise<void>((resolve) => (open = resolve));
  expect((await admin.post('/api/v1/admin/runtimes/rollout').send({ image: NEXT })).status).toBe(202);
  const second = await admin.post('/api/v1/admin/runtimes/rollout').send({ image: NEXT });
  expect([second.status, errorCode(second)]).toEqual([409, 'ROLLOUT_RUNNING']);
  open();
  backend.startGate = null;
  await eventually(() => (h.platform.rollout.current?.status === 'running' ? undefined : true), 'the first rollout to end');

  const stopped = h.platform.runtimes.stop({ id: ids.carol ?? '', username: 'carol' }, ids.carol ?? '', { ip: null, userAgent: null });
  await h.platform.runtimes.settled(stopped.runtime.id ?? '');
  const canary = await admin.post('/api/v1/admin/runtimes/rollout').send({ image: BROKEN, canaryUserId: ids.carol });
  expect([canary.status, errorCode(canary)]).toEqual([409, 'CANARY_NOT_RUNNING']);
  for (const bad of [{}, { image: 'ghcr.io/openclaw/openclaw@sha256:abc' }, { image: NEXT, canaryUserId: 'x' }, { image: NEXT, extra: 1 }]) {
    expect(errorCode(await admin.post('/api/v1/admin/runtimes/rollout').send(bad))).toBe('VALIDATION_FAILED');
  }
  const member = (await h.createMember(admin, 'dave')).client;
  expect((await member.post('/api/v1/admin/runtimes/rollout').send({ image: NEXT })).status).toBe(403);
  expect((await member.get('/api/v1/admin/runtimes/rollout')).status).toBe(403);
});

test('a runtime its member stopped before its turn is not started behind their back', async () => {
  let open!: () => void;
  backend.startGate = new Promise<void>((resolve) => (open = resolve));
  expect((await admin.post('/api/v1/admin/runtimes/rollout').send({ image: NEXT, canaryUserId: ids.alice })).status).toBe(202);
  // Alice (the canary) is being restarted; meanwhile Carol stops her own runtime.
  await eventually(() => (h.platform.rollout.current?.items[0]?.status === 'restarting' ? true : undefined), 'the canary to be restarting');
  const stopped = h.platform.runtimes.stop({ id: ids.carol ?? '', username: 'carol' }, ids.carol ?? '', { ip: null, userAgent: null });
  open();
  backend.startGate = null;
  await h.platform.runtimes.settled(stopped.runtime.id ?? '');
  const rollout = await eventually(() => {
    const current = h.platform.rollout.current;
    return current && current.status !== 'running' ? current : undefined;
  }, 'the rollout to finish');
  expect(rollout.items.map((i) => [i.username, i.status])).toEqual([
    ['alice', 'updated'],
    ['bruno', 'updated'],
    ['carol', 'skipped'],
  ]);
  expect(rollout.status).toBe('partial');
  expect(h.platform.runtimes.viewForUser(ids.carol ?? '').state).toBe('stopped');
});
