/**
 * Two installations on one engine never touch each other (real engine). A second installation
 * configured with the first one's instance name (another data directory) is refused: its claim
 * fails, its watcher adopts and removes nothing, and the built server exits with the reason
 * before it listens. The first one's running runtime is untouched throughout.
 */
import type { EngineHarness } from '../support/engine';
import { docker, engineHarness, newInstanceId, sweep, tearDown } from '../support/engine';
import { cleanUpProcesses, freePort, spawnMain, tempDir, DOCKER_SOCKET } from '../support/processes';

jest.setTimeout(120_000);

const instance = newInstanceId();
let first: EngineHarness;
let second: EngineHarness | null = null;
let runningContainer = '';

beforeAll(async () => {
  first = engineHarness({ instance });
  await first.platform.runtimes.claimInstallation();
  await first.platform.watcher.start();
  const { client: admin } = await first.setupAdmin();
  const { client } = await first.createMember(admin, 'alice');
  const res = await client.post('/api/v1/runtime/start');
  await first.platform.runtimes.settled(res.body.runtime.id);
  const row = first.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(res.body.runtime.id) as { container_id: string };
  runningContainer = row.container_id;
  expect((await docker.getContainer(runningContainer).inspect()).State.Running).toBe(true);
});

afterAll(async () => {
  await cleanUpProcesses();
  if (second) {
    second.platform.watcher.close();
    second.close();
  }
  await tearDown(first);
  await sweep(instance);
});

test("a second installation under the same instance name is refused, and removes nothing of the first one's", async () => {
  second = engineHarness({ instance });
  expect(second.platform.installation.instance).toBe(instance);
  expect(second.platform.installation.id).not.toBe(first.platform.installation.id);

  await expect(second.platform.runtimes.claimInstallation()).rejects.toMatchObject({
    kind: 'conflict',
    message: expect.stringContaining(`already runs on this Docker engine under the instance name "${instance}"`),
  });
  // Its watcher would have taken alice's container for an orphan: it stops instead.
  expect(await second.platform.watcher.start()).toBeNull();
  expect(second.logs.text).toContain('another installation owns this instance name');
  expect((await docker.getContainer(runningContainer).inspect()).State.Running).toBe(true);

  // The first one's own claim still holds (idempotent), and its runtime is still its own.
  await first.platform.runtimes.claimInstallation();
  expect((await first.platform.watcher.reconcile()).orphanContainersRemoved).toBe(0);
  expect((await docker.getContainer(runningContainer).inspect()).State.Running).toBe(true);
});

test('the built server started as such a second installation exits with the reason before it listens', async () => {
  const child = spawnMain('second installation', {
    CLAWLOOPS_PORT: String(await freePort()),
    CLAWLOOPS_EGRESS_PORT: String(await freePort()),
    CLAWLOOPS_HOST: '127.0.0.1',
    CLAWLOOPS_DATA_DIR: tempDir(),
    CLAWLOOPS_DOCKER_SOCKET: DOCKER_SOCKET,
    CLAWLOOPS_INSTANCE: instance,
  });
  const exit = await child.waitForExit();
  expect(exit).toEqual({ code: 1, signal: null });
  const fatal = child.logs().find((l) => l.level === 60);
  expect(fatal?.msg).toMatch(/Another ClawLoops installation .* instance name/);
  expect(child.logs().some((l) => l.msg === 'ClawLoops control plane listening')).toBe(false);
  expect((await docker.getContainer(runningContainer).inspect()).State.Running).toBe(true);
});
