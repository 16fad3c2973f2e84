/**
 * On the real engine: a new account's network and volume exist shortly after it is created
 * (prepared in the background, the volume seeded with the platform's openclaw.json), and go with
 * the account when it is deleted.
 */
import { LABELS } from '../../src/docker/runtimeBackend';
import { runtimeNames } from '../../src/docker/runtimeContainer';
import { docker, engineHarness, eventually, sweep, volumeEntries, type EngineHarness } from '../support/engine';

let h: EngineHarness;

afterAll(async () => {
  await h.platform.runtimes.drain(10_000);
  h.close();
  await sweep(h.instance);
});

const exists = async (check: () => Promise<unknown>): Promise<boolean> => check().then(() => true, () => false);

test("a new account's network and volume are prepared in the background, and removed with the account", async () => {
  h = engineHarness();
  const { client: admin } = await h.setupAdmin();
  const { userId } = await h.createMember(admin, 'newcomer');
  const runtimeId = h.platform.runtimes.runtimeIdForUser(userId);
  expect(runtimeId).not.toBeNull();
  const names = runtimeNames(runtimeId!);
  await eventually(
    async () => ((await exists(() => docker.getNetwork(names.network).inspect())) && (await exists(() => docker.getVolume(names.volume).inspect())) ? true : undefined),
    'the network and the volume of the new account',
  );
  await h.platform.runtimes.drain(10_000);
  // Seeded for the first start: the platform's config, owned by the runtime's user, and the
  // container that held the volume meanwhile is gone.
  const entries = await volumeEntries(names.volume, h.instance);
  expect(entries).toEqual(expect.arrayContaining([expect.objectContaining({ path: 'openclaw.json', type: 'file', uid: 1000, mode: 0o600 })]));
  const helpers = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.instance}=${h.instance}`, `${LABELS.userId}=${userId}`] }) });
  expect(helpers).toEqual([]);
  const row = h.platform.db.prepare('SELECT seeded_config_hash FROM runtimes WHERE id = ?').get(runtimeId) as { seeded_config_hash: string | null };
  expect(row.seeded_config_hash).toMatch(/^[0-9a-f]{16}$/);

  expect((await admin.delete(`/api/v1/admin/users/${userId}`)).status).toBe(204);
  await eventually(
    async () => (!(await exists(() => docker.getNetwork(names.network).inspect())) && !(await exists(() => docker.getVolume(names.volume).inspect())) ? true : undefined),
    'the network and the volume of the deleted account to be gone',
  );
});
