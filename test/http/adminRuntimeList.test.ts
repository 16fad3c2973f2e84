/**
 * GET /api/v1/admin/runtimes answers from the figures the control plane keeps, never by asking
 * the engine, and says how old they are. In-memory provisioner; the figures are renewed by hand.
 */
import type { RuntimeStats } from '../../src/runtime/provisioner';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { createHarness, type Harness } from '../support/harness';

class CountingProvisioner extends FakeProvisioner {
  statsCalls = 0;
  failing = false;
  override async stats(instanceId: string): Promise<RuntimeStats | null> {
    this.statsCalls++;
    if (this.failing) throw new Error('connect ENOENT /var/run/docker.sock');
    return super.stats(instanceId);
  }
}

let h: Harness;
afterEach(async () => {
  await h.platform.runtimes.drain(5_000);
  h.close();
});

test('the admin list shows the kept figures with their age, without a stats call per load', async () => {
  const provisioner = new CountingProvisioner();
  h = createHarness({ runtimeProvisioner: provisioner, runtimeProbe: alwaysReadyProbe });
  const { client: admin } = await h.setupAdmin();
  const alice = await h.createMember(admin, 'alice');
  const started = await alice.client.post('/api/v1/runtime/start');
  await h.platform.runtimes.settled(started.body.runtime.id);

  await h.platform.runtimes.figures.cycle();
  h.clock.advance(4_000);
  const calls = provisioner.statsCalls;
  const res = await admin.get('/api/v1/admin/runtimes');
  expect(res.status).toBe(200);
  expect(provisioner.statsCalls).toBe(calls);
  const byName = new Map((res.body.items as { username: string }[]).map((item) => [item.username, item]));
  expect(byName.get('alice')).toMatchObject({
    state: 'running',
    stats: { memoryBytes: 50 * 1024 ** 2, cpuPercent: 1 },
    statsAgeSeconds: 4,
    statsStale: false,
  });

  // The engine goes away: the list still answers at once, with the last figures marked stale.
  provisioner.failing = true;
  await h.platform.runtimes.figures.cycle();
  h.clock.advance(6_000);
  const later = await admin.get('/api/v1/admin/runtimes');
  expect(later.status).toBe(200);
  expect(later.body.items.find((i: { username: string }) => i.username === 'alice')).toMatchObject({ statsAgeSeconds: 10, statsStale: true });

  // Stopped: no figures are shown (or kept) for it.
  provisioner.failing = false;
  const stopped = await alice.client.post('/api/v1/runtime/stop');
  await h.platform.runtimes.settled(stopped.body.runtime.id);
  await h.platform.runtimes.figures.cycle();
  const after = await admin.get('/api/v1/admin/runtimes');
  expect(after.body.items.find((i: { username: string }) => i.username === 'alice')).toMatchObject({ state: 'stopped', stats: null, statsAgeSeconds: null });
  expect(h.platform.runtimes.figures.size).toBe(0);
});
