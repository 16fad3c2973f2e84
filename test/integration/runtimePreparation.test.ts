/**
 * On the real engine: a new account's network and volume exist shortly after it is created
 * (prepared in the background), and go with the account when it is deleted.
 */
import { runtimeNames } from '../../src/docker/runtimeContainer';
import { docker, engineHarness, eventually, sweep, type EngineHarness } from '../support/engine';

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

  expect((await admin.delete(`/api/v1/admin/users/${userId}`)).status).toBe(204);
  await eventually(
    async () => (!(await exists(() => docker.getNetwork(names.network).inspect())) && !(await exists(() => docker.getVolume(names.volume).inspect())) ? true : undefined),
    'the network and the volume of the deleted account to be gone',
  );
});
