/**
 * A new account's runtime volume is seeded with the platform's openclaw.json in the background,
 * so its first start skips the write; anything that could have changed the volume, or what the
 * start renders, brings the write back. In-memory provisioner at our own port.
 */
import { CONFIG_ENTRY } from '../../src/runtime/runtimeConfigFile';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { createHarness, type Harness } from '../support/harness';

const IMAGE = 'ghcr.io/openclaw/openclaw:2026.9.6';
let h: Harness;
let fake: FakeProvisioner;

beforeEach(() => {
  fake = new FakeProvisioner();
  fake.images.add(IMAGE);
  h = createHarness({ runtimeProvisioner: fake, runtimeProbe: alwaysReadyProbe, runtimeSettings: { image: IMAGE } });
});

afterEach(async () => {
  await h.platform.runtimes.drain(5_000);
  h.close();
});

const configIn = (runtimeId: string) => {
  const node = fake.dataOf(runtimeId).get(CONFIG_ENTRY.replace(/^\.openclaw\//, ''));
  return node?.type === 'file' ? JSON.parse(node.content.toString()) : null;
};
const instanceOf = (runtimeId: string) => [...fake.instances.values()].filter((i) => i.owner.runtimeId === runtimeId).at(-1);

async function newMember(username: string) {
  const { client: admin } = await h.setupAdmin();
  const member = await h.createMember(admin, username);
  const runtimeId = h.platform.runtimes.runtimeIdForUser(member.userId) ?? '';
  await h.platform.runtimes.drain(5_000);
  return { ...member, runtimeId };
}

test("a new account's volume gets the platform's config in the background, and its first start writes nothing", async () => {
  const { client, runtimeId } = await newMember('alice');
  expect(fake.seeded.get(runtimeId)?.map((e) => e.path)).toEqual(expect.arrayContaining([CONFIG_ENTRY]));
  expect(configIn(runtimeId)?.gateway?.auth?.trustedProxy?.allowUsers).toEqual(['alice']);

  const res = await client.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(res.body.runtime.id);
  expect((await client.get('/api/v1/runtime')).body.state).toBe('running');
  expect(instanceOf(runtimeId)?.files).toEqual([]);
  expect(configIn(runtimeId)?.gateway?.auth?.trustedProxy?.allowUsers).toEqual(['alice']);

  // From its first container on, anything may have run on the volume: every later start rewrites.
  await client.post('/api/v1/runtime/stop');
  await h.platform.runtimes.settled(runtimeId);
  const again = await client.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(again.body.runtime.id);
  expect(instanceOf(runtimeId)?.files.map((e) => e.path)).toEqual(expect.arrayContaining([CONFIG_ENTRY]));
});

test('a settings change between seeding and the first start brings the write back', async () => {
  const { client, runtimeId } = await newMember('bruno');
  h.platform.runtimeSettings.set({ models: ['another-model'] });
  const res = await client.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(res.body.runtime.id);
  expect(instanceOf(runtimeId)?.files.map((e) => e.path)).toEqual(expect.arrayContaining([CONFIG_ENTRY]));
  expect(JSON.stringify(configIn(runtimeId))).toContain('another-model');
});

test('without the image on the host nothing is seeded, and the first start writes the config', async () => {
  fake.images.delete(IMAGE);
  const { client, runtimeId } = await newMember('carol');
  expect(fake.seeded.has(runtimeId)).toBe(false);
  const res = await client.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(res.body.runtime.id);
  expect(instanceOf(runtimeId)?.files.map((e) => e.path)).toEqual(expect.arrayContaining([CONFIG_ENTRY]));
});

test('a volume that existed before the preparation is never taken for a seeded one', async () => {
  const { client: admin } = await h.setupAdmin();
  // A volume already there (say, kept from an earlier install): the preparation finds it, not makes it.
  const original = fake.prepare.bind(fake);
  fake.prepare = async (owner) => ({ ...(await original(owner)), freshData: false });
  const { client, userId } = await h.createMember(admin, 'dora');
  const runtimeId = h.platform.runtimes.runtimeIdForUser(userId) ?? '';
  await h.platform.runtimes.drain(5_000);
  expect(fake.seeded.has(runtimeId)).toBe(false);
  const res = await client.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(res.body.runtime.id);
  expect(instanceOf(runtimeId)?.files.map((e) => e.path)).toEqual(expect.arrayContaining([CONFIG_ENTRY]));
});
