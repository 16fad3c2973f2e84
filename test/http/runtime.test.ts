/**
 * Runtime API behaviour that the real engine cannot show on our machines (image pulls need a
 * registry) or that depends on time (idle stop), with an in-memory provisioner at our own interface.
 * Everything else about runtimes is tested against the real engine in test/integration.
 */
import type TestAgent from 'supertest/lib/agent';
import { infraUnavailable } from '../../src/lib/infraErrors';
import type { OperationView } from '../../src/runtime/operations';
import { eventually } from '../support/eventually';
import { alwaysReadyProbe, FakeProvisioner } from '../support/fakeProvisioner';
import { createHarness, errorCode, type Harness } from '../support/harness';

const IMAGE = 'ghcr.io/openclaw/openclaw:2026.9.6';
let h: Harness;
let backend: FakeProvisioner;

function harness(settings: Record<string, unknown> = {}): Harness {
  backend = new FakeProvisioner();
  h = createHarness({ runtimeProvisioner: backend, runtimeProbe: alwaysReadyProbe, runtimeSettings: { image: IMAGE, ...settings } });
  return h;
}

afterEach(async () => {
  await h.platform.runtimes.drain(5_000);
  h.close();
});

/** Records every progress event of the user's runtime. */
function recordProgress(userId: string): OperationView[] {
  const seen: OperationView[] = [];
  const follow = (runtimeId: string) =>
    h.platform.runtimeHub.subscribe(runtimeId, (event) => {
      if (event.type === 'progress') seen.push(event.operation);
    });
  // A new account's runtime record exists from its creation (its resources are prepared then).
  const existing = h.platform.runtimes.runtimeIdForUser(userId);
  if (existing) follow(existing);
  else h.platform.runtimeHub.subscribeCreated(userId, follow);
  return seen;
}

describe('image pull', () => {
  test('a missing image is pulled first, and the progress stream carries the bytes', async () => {
    harness();
    backend.pullScript = [
      { bytesDone: 0, bytesTotal: 0, status: 'Pulling fs layer' },
      { bytesDone: 100, bytesTotal: 400, status: 'Downloading' },
      { bytesDone: 400, bytesTotal: 400, status: 'Download complete' },
    ];
    const { client, userId } = await h.setupAdmin();
    const seen = recordProgress(userId);
    const res = await client.post('/api/v1/runtime/start');
    expect(res.status).toBe(202);
    await h.platform.runtimes.settled(res.body.runtime.id);
    const pulling = seen.filter((p) => p.step === 'pulling');
    expect(pulling.map((p) => [p.bytesDone, p.bytesTotal])).toEqual([
      [null, null],
      [0, 0],
      [100, 400],
      [400, 400],
    ]);
    expect(pulling[0]?.message).toBe(`Downloading ${IMAGE}`);
    expect(pulling.map((p) => p.percent)).toEqual([5, 5, 16, 50]);
    expect(seen.at(-1)).toMatchObject({ status: 'succeeded', step: 'ready', percent: 100 });
    expect(backend.images.has(IMAGE)).toBe(true);
    expect((await client.get('/api/v1/runtime')).body.state).toBe('running');
  });

  test('a failed pull ends the start with IMAGE_PULL_FAILED naming the image and the reason', async () => {
    harness();
    backend.pullScript = 'dial tcp: lookup ghcr.io: no such host';
    const { client, userId } = await h.setupAdmin();
    const seen = recordProgress(userId);
    const res = await client.post('/api/v1/runtime/start');
    await h.platform.runtimes.settled(res.body.runtime.id);
    expect(seen.at(-1)).toMatchObject({
      status: 'failed',
      step: 'failed',
      error: { code: 'IMAGE_PULL_FAILED', message: expect.stringContaining(`${IMAGE} is not on this host and could not be downloaded`) },
    });
    expect(seen.at(-1)?.error?.message).toContain('no such host');
    const view = (await client.get('/api/v1/runtime')).body;
    expect(view).toMatchObject({ state: 'absent', desiredState: 'stopped', lastError: { code: 'IMAGE_PULL_FAILED' } });
  });
});

describe('queueing across users', () => {
  test('beyond the parallel limit, starts queue in order and say how many are ahead', async () => {
    harness({ maxParallelOperations: 1 });
    backend.images.add(IMAGE);
    const { client: admin } = await h.setupAdmin();
    const members = await Promise.all(['ann', 'ben', 'cid'].map((u) => h.createMember(admin, u)));
    let open = () => {};
    backend.startGate = new Promise((resolve) => (open = resolve));
    const answers = [];
    for (const m of members) answers.push(await m.client.post('/api/v1/runtime/start'));
    expect(answers.map((a) => [a.body.operation.message, a.body.operation.queuePosition])).toEqual([
      ['Waiting to begin', null],
      ['Queued: next in line', 0],
      ['Queued behind 1 other runtime', 1],
    ]);
    // A stop of a runtime whose start is still queued is refused, not queued behind it.
    const busy = await members[2]?.client.post('/api/v1/runtime/stop');
    expect(busy?.status).toBe(409);
    open();
    await Promise.all(answers.map((a) => h.platform.runtimes.settled(a.body.runtime.id)));
    for (const m of members) expect((await m.client.get('/api/v1/runtime')).body.state).toBe('running');
  });
});

describe('idle stop', () => {
  test('stops a runtime with no activity for the configured time; activity keeps it running', async () => {
    harness({ idleStopMs: 30 * 60_000 });
    backend.images.add(IMAGE);
    const { client, userId } = await h.setupAdmin();
    const res = await client.post('/api/v1/runtime/start');
    await h.platform.runtimes.settled(res.body.runtime.id);

    h.clock.advance(20 * 60_000);
    h.platform.runtimes.touchUser(userId);
    h.clock.advance(20 * 60_000);
    expect(h.platform.runtimes.stopIdle()).toBe(0);

    h.clock.advance(11 * 60_000);
    expect(h.platform.runtimes.stopIdle()).toBe(1);
    await h.platform.runtimes.settled(res.body.runtime.id);
    expect((await client.get('/api/v1/runtime')).body).toMatchObject({ state: 'stopped', desiredState: 'stopped' });
    const audit = (await client.get('/api/v1/admin/audit?action=runtime.stop')).body.items;
    expect(audit[0].actor.username).toBe('(idle stop)');
  });

  test('is off by default', async () => {
    harness();
    backend.images.add(IMAGE);
    const { client } = await h.setupAdmin();
    const res = await client.post('/api/v1/runtime/start');
    await h.platform.runtimes.settled(res.body.runtime.id);
    h.clock.advance(365 * 86_400_000);
    expect(h.platform.runtimes.stopIdle()).toBe(0);
  });
});

describe('audit and access', () => {
  test('every lifecycle action is audited with its actor', async () => {
    harness();
    backend.images.add(IMAGE);
    const { client } = await h.setupAdmin();
    for (const action of ['start', 'stop', 'restart']) {
      const res = await client.post(`/api/v1/runtime/${action}`);
      await h.platform.runtimes.settled(res.body.runtime.id);
    }
    const del = await client.delete('/api/v1/runtime?purge=true&confirm=admin');
    expect(del.status).toBe(202);
    await h.platform.runtimes.settled(del.body.runtime.id);
    const actions = (await client.get('/api/v1/admin/audit?action=runtime.*')).body.items.map((e: { action: string }) => e.action);
    expect(actions.sort()).toEqual(['runtime.purge', 'runtime.restart', 'runtime.start', 'runtime.stop']);
    expect(backend.data.size).toBe(0);
  });

  test('admins stop or restart many runtimes in one call; each user\'s outcome is reported on its own', async () => {
    harness();
    backend.images.add(IMAGE);
    const { client } = await h.setupAdmin();
    const alice = await h.createMember(client, 'alice');
    const bob = await h.createMember(client, 'bob');
    for (const member of [alice, bob]) await h.platform.runtimes.settled((await member.client.post('/api/v1/runtime/start')).body.runtime.id);
    await client.patch(`/api/v1/admin/users/${bob.userId}`).send({ status: 'disabled' });
    const unknownId = '00000000-0000-4000-8000-000000000000';

    const restarted = await client.post('/api/v1/admin/runtimes/restart').send({ userIds: [alice.userId, bob.userId, unknownId, alice.userId] });
    expect(restarted.status).toBe(200);
    expect(restarted.body.results).toMatchObject([
      { userId: alice.userId, ok: true, operation: { kind: 'restart' } },
      { userId: bob.userId, ok: false, error: { code: 'USER_DISABLED' } },
      { userId: unknownId, ok: false, error: { code: 'USER_NOT_FOUND' } },
    ]);
    await h.platform.runtimes.settled(restarted.body.results[0].runtime.id);
    // Nothing is stale now, so "restart the stale ones" has nothing to do.
    expect((await client.post('/api/v1/admin/runtimes/restart').send({ stale: true })).body.results).toEqual([]);

    const stopped = await client.post('/api/v1/admin/runtimes/stop').send({ userIds: [alice.userId] });
    expect(stopped.body.results).toMatchObject([{ userId: alice.userId, ok: true, operation: { kind: 'stop' } }]);
    await h.platform.runtimes.settled(stopped.body.results[0].runtime.id);
    expect((await alice.client.get('/api/v1/runtime')).body.state).toBe('stopped');
    const audited = (await client.get('/api/v1/admin/audit?action=runtime.*')).body.items.filter((e: { actor: { username: string } | null }) => e.actor?.username === 'admin');
    expect(audited.map((e: { action: string }) => e.action).sort()).toEqual(['runtime.restart', 'runtime.stop']);

    for (const bad of [{}, { stale: true, userIds: [alice.userId] }, { userIds: [] }, { userIds: ['not-an-id'] }, { stale: false }]) {
      const res = await client.post('/api/v1/admin/runtimes/restart').send(bad);
      expect(res.status).toBe(400);
      expect(errorCode(res)).toBe('VALIDATION_FAILED');
    }
    expect((await client.post('/api/v1/admin/runtimes/stop').send({ stale: true })).status).toBe(400);
    expect((await alice.client.post('/api/v1/admin/runtimes/stop').send({ userIds: [bob.userId] })).status).toBe(403);
  });

  test('a user with a pending password change cannot use the runtime API yet', async () => {
    harness();
    const { client: admin } = await h.setupAdmin();
    const created = await admin.post('/api/v1/admin/users').send({ username: 'temp', password: 'correct horse battery staple' });
    expect(created.status).toBe(201);
    const temp = h.client();
    await temp.post('/api/v1/auth/login').send({ username: 'temp', password: 'correct horse battery staple' });
    const res = await temp.get('/api/v1/runtime');
    expect(res.status).toBe(403);
    expect(errorCode(res)).toBe('PASSWORD_CHANGE_REQUIRED');
  });

  test('a state-changing runtime request from a workspace origin is refused', async () => {
    harness();
    const { client } = await h.setupAdmin();
    const res = await client.post('/api/v1/runtime/start').set('Origin', 'http://admin.localhost');
    expect(res.status).toBe(403);
    expect(errorCode(res)).toBe('ORIGIN_NOT_ALLOWED');
  });
});

describe('idle stop as an admin setting', () => {
  test('off by default; an admin turns it on at runtime, it applies at once and survives a restart', async () => {
    harness();
    backend.images.add(IMAGE);
    const { client } = await h.setupAdmin();
    expect((await client.get('/api/v1/admin/settings')).body).toMatchObject({ idleStopMinutes: 0, image: IMAGE });

    const res = await client.post('/api/v1/runtime/start');
    await h.platform.runtimes.settled(res.body.runtime.id);
    const patched = await client.patch('/api/v1/admin/settings').send({ idleStopMinutes: 45 });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ idleStopMinutes: 45 });
    h.clock.advance(46 * 60_000);
    expect(h.platform.runtimes.stopIdle()).toBe(1);
    await h.platform.runtimes.settled(res.body.runtime.id);

    const audit = (await client.get('/api/v1/admin/audit?action=settings.update')).body.items;
    expect(audit[0].detail).toMatchObject({ before: { idleStopMinutes: 0 }, after: { idleStopMinutes: 45 } });

    // A restart of the control plane keeps the stored value over the environment's default.
    const dataDir = h.dataDir;
    h.platform.close();
    const again = createHarness({ dataDir, runtimeProvisioner: backend, runtimeProbe: alwaysReadyProbe, runtimeSettings: { image: IMAGE } });
    try {
      const admin = again.client();
      await admin.post('/api/v1/auth/login').send({ username: 'admin', password: 'correct horse battery staple' });
      expect((await admin.get('/api/v1/admin/settings')).body).toMatchObject({ idleStopMinutes: 45 });
      expect(again.platform.runtimes.settings.idleStopMs).toBe(45 * 60_000);
    } finally {
      again.close();
    }
  });

  test('the runtime image and resource limits: running runtimes are marked until restarted, then run the new ones', async () => {
    harness();
    const NEXT = 'ghcr.io/openclaw/openclaw:2026.10.1';
    backend.images.add(IMAGE);
    backend.images.add(NEXT);
    const { client } = await h.setupAdmin();
    const started = await client.post('/api/v1/runtime/start');
    await h.platform.runtimes.settled(started.body.runtime.id);
    const patched = await client.patch('/api/v1/admin/settings').send({ image: NEXT, memoryMiB: 3072, cpus: 1.5, pidsLimit: 256 });
    expect(patched.body).toEqual({ idleStopMinutes: 0, image: NEXT, memoryMiB: 3072, cpus: 1.5, pidsLimit: 256 });
    expect((await client.get('/api/v1/runtime')).body).toMatchObject({ state: 'running', outdatedImage: true, configStale: true });
    const restarted = await client.post('/api/v1/runtime/restart');
    await h.platform.runtimes.settled(restarted.body.runtime.id);
    expect((await client.get('/api/v1/runtime')).body).toMatchObject({ state: 'running', outdatedImage: false, configStale: false, image: NEXT, limits: { memoryBytes: 3072 * 1024 ** 2, cpus: 1.5, pidsLimit: 256 } });
    const running = [...backend.instances.values()].find((c) => c.phase === 'running');
    expect(running?.spec).toMatchObject({ image: NEXT, limits: { memoryBytes: 3072 * 1024 ** 2, nanoCpus: 1.5e9, pidsLimit: 256 } });
  });

  test.each<[unknown, string]>([
    [{ image: 'ghcr.io/openclaw/openclaw@sha256:abc' }, 'pinned by tag'],
    [{ image: 'Not An Image' }, 'image'],
    [{ memoryMiB: 128 }, 'memoryMiB'],
    [{ cpus: 0 }, 'cpus'],
    [{ pidsLimit: 10 }, 'pidsLimit'],
    [{ idleStopMinutes: -1 }, 'idleStopMinutes'],
    [{ idleStopMinutes: 1.5 }, 'whole number'],
    [{ idleStopMinutes: 7 * 24 * 60 + 1 }, 'idleStopMinutes'],
    [{ idleStopMinutes: '30' }, 'idleStopMinutes'],
    [{ idleStop: 30 }, 'idleStop'],
  ])('refuses %j', async (payload, mention) => {
    harness();
    const { client } = await h.setupAdmin();
    const res = await client.patch('/api/v1/admin/settings').send(payload as object);
    expect(res.status).toBe(400);
    expect(errorCode(res)).toBe('VALIDATION_FAILED');
    expect(res.body.error.message).toContain(mention);
  });

  test('members can neither read nor change settings', async () => {
    harness();
    const { client: admin } = await h.setupAdmin();
    const { client } = await h.createMember(admin, 'mia');
    expect((await client.get('/api/v1/admin/settings')).status).toBe(403);
    expect((await client.patch('/api/v1/admin/settings').send({ idleStopMinutes: 5 })).status).toBe(403);
  });
});

describe('platform-owned config at every start', () => {
  const configIn = (runtimeId: string) => backend.dataOf(runtimeId);
  const configText = (runtimeId: string) => {
    const node = configIn(runtimeId).get('openclaw.json');
    return node?.type === 'file' ? node.content.toString('utf8') : '';
  };

  test('a restart of the same container re-applies the platform keys an agent changed and keeps the member\'s settings', async () => {
    harness();
    backend.images.add(IMAGE);
    const { client } = await h.setupAdmin();
    const started = await client.post('/api/v1/runtime/start');
    const runtimeId: string = started.body.runtime.id;
    await h.platform.runtimes.settled(runtimeId);
    const containerId = [...backend.instances.keys()][0];

    // The agent (uid 1000 inside the container) rewrites its own config while it runs.
    const config = JSON.parse(configText(runtimeId));
    config.gateway.auth = { mode: 'none' };
    config.models.providers.platform.baseUrl = 'https://elsewhere.example/v1';
    config.ui = { seamColor: '#ff8800' };
    configIn(runtimeId).set('openclaw.json', { type: 'file', mode: 0o600, content: Buffer.from(JSON.stringify(config)) });
    // The member's settings are not part of the config hash: nothing is stale, nothing re-created.
    expect((await client.get('/api/v1/runtime')).body.configStale).toBe(false);

    const restarted = await client.post('/api/v1/runtime/restart');
    await h.platform.runtimes.settled(runtimeId);
    expect([...backend.instances.keys()]).toEqual([containerId]);
    const after = JSON.parse(configText(runtimeId));
    expect(after.gateway.auth.mode).toBe('trusted-proxy');
    expect(after.models.providers.platform.baseUrl).toBe(h.platform.runtimes.settings.modelGatewayUrl);
    expect(after.ui).toEqual({ seamColor: '#ff8800' });
    expect(restarted.status).toBe(202);
    expect(h.logs.text).toContain('platform-owned settings in the runtime');
    expect(h.logs.text).toContain('gateway.auth.mode');
    expect(h.logs.text).not.toContain('elsewhere.example');
  });

  test('a re-created container starts from the member\'s settings in the volume, not from a blank config', async () => {
    harness();
    backend.images.add(IMAGE);
    const { client } = await h.setupAdmin();
    const started = await client.post('/api/v1/runtime/start');
    const runtimeId: string = started.body.runtime.id;
    await h.platform.runtimes.settled(runtimeId);
    const config = JSON.parse(configText(runtimeId));
    configIn(runtimeId).set('openclaw.json', { type: 'file', mode: 0o600, content: Buffer.from(JSON.stringify({ ...config, session: { dmScope: 'main' } })) });
    // A new image re-creates the container.
    await client.patch('/api/v1/admin/settings').send({ image: 'ghcr.io/openclaw/openclaw:2026.10.1' });
    backend.images.add('ghcr.io/openclaw/openclaw:2026.10.1');
    await h.platform.runtimes.settled((await client.post('/api/v1/runtime/restart')).body.runtime.id);
    expect(backend.instances.size).toBe(1);
    expect(JSON.parse(configText(runtimeId)).session).toEqual({ dmScope: 'main' });
  });

  test('an unreadable volume fails the start with CONFIG_READ_FAILED and leaves the file alone', async () => {
    harness();
    backend.images.add(IMAGE);
    const { client } = await h.setupAdmin();
    const started = await client.post('/api/v1/runtime/start');
    const runtimeId: string = started.body.runtime.id;
    await h.platform.runtimes.settled(runtimeId);
    const before = configText(runtimeId);
    backend.readEntry = async () => {
      throw new Error('the engine hung up');
    };
    await h.platform.runtimes.settled((await client.post('/api/v1/runtime/restart')).body.runtime.id);
    const view = (await client.get('/api/v1/runtime')).body;
    expect(view.lastError).toMatchObject({ code: 'CONFIG_READ_FAILED', message: expect.stringContaining('the engine hung up') });
    expect(configText(runtimeId)).toBe(before);
  });
});

describe('engine faults', () => {
  test('a readiness confirmation the engine fails (it is restarting) is logged where it happens, never left unhandled', async () => {
    harness();
    backend.images.add(IMAGE);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      await h.platform.watcher.start();
      const { client } = await h.setupAdmin();
      const started = await client.post('/api/v1/runtime/start');
      await h.platform.runtimes.settled(started.body.runtime.id);
      const instanceId = [...backend.instances.keys()][0] ?? '';
      // The engine restarted the runtime on its own (the watcher reads it once), then went away
      // while its readiness was being confirmed.
      const inspect = backend.inspect.bind(backend);
      let reads = 0;
      backend.inspect = async (id) => {
        if (reads++ === 0) return inspect(id);
        throw infraUnavailable('the engine is restarting');
      };
      backend.announce(instanceId, 'started');
      await h.platform.watcher.drained();
      await eventually(() => (h.logs.text.includes("confirming a runtime's readiness failed") ? true : undefined), 'the logged failure');
      // One more turn of the event loop: an unhandled rejection would be reported by now.
      await new Promise((resolve) => setImmediate(resolve));
      expect(unhandled).toEqual([]);
      expect(h.logs.text).toContain('the engine is restarting');
      // The platform keeps answering.
      expect((await client.get('/api/v1/runtime')).status).toBe(200);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      h.platform.watcher.close();
    }
  });
});

describe('background preparation of a new account', () => {
  test('creating an account prepares its runtime; a start joins a preparation in flight without preparing twice', async () => {
    harness();
    backend.images.add(IMAGE);
    let open = () => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    const original = backend.prepare.bind(backend);
    let calls = 0;
    backend.prepare = async (owner) => {
      calls++;
      await gate;
      return original(owner);
    };
    const { client, userId } = await h.setupAdmin();
    const runtimeId = h.platform.runtimes.runtimeIdForUser(userId);
    expect(runtimeId).not.toBeNull();
    expect(calls).toBe(1);
    const res = await client.post('/api/v1/runtime/start');
    expect(res.status).toBe(202);
    open();
    await h.platform.runtimes.settled(res.body.runtime.id);
    expect(calls).toBe(1);
    expect(backend.placements.has(runtimeId!)).toBe(true);
    expect((await client.get('/api/v1/runtime')).body.state).toBe('running');
  });

  test('a failed background preparation never fails the account, is logged, and the first start prepares again', async () => {
    harness();
    backend.images.add(IMAGE);
    const original = backend.prepare.bind(backend);
    let failures = 1;
    backend.prepare = async (owner) => {
      if (failures-- > 0) throw new Error('engine said no');
      return original(owner);
    };
    const { client, userId } = await h.setupAdmin();
    await h.platform.runtimes.drain(5_000);
    expect(h.logs.text).toContain('preparing the runtime resources of a user in the background failed');
    const runtimeId = h.platform.runtimes.runtimeIdForUser(userId);
    expect(backend.placements.has(runtimeId!)).toBe(false);
    const res = await client.post('/api/v1/runtime/start');
    await h.platform.runtimes.settled(res.body.runtime.id);
    expect(backend.placements.has(runtimeId!)).toBe(true);
  });

  test('an account deleted while its preparation is in flight leaves nothing behind', async () => {
    harness();
    let open = () => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    const original = backend.prepare.bind(backend);
    backend.prepare = async (owner) => {
      await gate;
      return original(owner);
    };
    const { client: admin } = await h.setupAdmin();
    open();
    await h.platform.runtimes.drain(5_000);
    let openMember = () => {};
    const memberGate = new Promise<void>((resolve) => (openMember = resolve));
    backend.prepare = async (owner) => {
      await memberGate;
      return original(owner);
    };
    const { userId } = await h.createMember(admin, 'dora');
    const runtimeId = h.platform.runtimes.runtimeIdForUser(userId)!;
    expect((await admin.delete(`/api/v1/admin/users/${userId}`)).status).toBeLessThan(300);
    openMember();
    await eventually(() => (h.logs.text.includes('removed the runtime resources of a deleted user') ? true : undefined), 'the deleted user\'s resources to be removed');
    expect(backend.placements.has(runtimeId)).toBe(false);
    expect(backend.data.has(runtimeId)).toBe(false);
  });
});

describe('who or what stopped a runtime', () => {
  const isoNow = () => new Date(h.clock.now()).toISOString();

  async function startOwn(client: TestAgent): Promise<string> {
    const res = await client.post('/api/v1/runtime/start');
    await h.platform.runtimes.settled(res.body.runtime.id);
    return res.body.runtime.id as string;
  }

  test('an idle stop says so, with how long it waited and when; the next start clears it', async () => {
    harness({ idleStopMs: 30 * 60_000 });
    backend.images.add(IMAGE);
    const { client } = await h.setupAdmin();
    const runtimeId = await startOwn(client);
    expect((await client.get('/api/v1/runtime')).body).toMatchObject({ stoppedBy: null, stateReason: null });

    h.clock.advance(31 * 60_000);
    expect(h.platform.runtimes.stopIdle()).toBe(1);
    await h.platform.runtimes.settled(runtimeId);
    const stopped = (await client.get('/api/v1/runtime')).body;
    expect(stopped).toMatchObject({ state: 'stopped', stoppedBy: { cause: 'idle', at: isoNow(), idleMinutes: 30, detail: null } });
    expect(stopped.stateReason).toBe(`Stopped at ${isoNow().slice(0, 16).replace('T', ' ')} UTC after 30 min without activity`);

    await startOwn(client);
    expect((await client.get('/api/v1/runtime')).body).toMatchObject({ state: 'running', stoppedBy: null, stateReason: null });
  });

  test('the member\'s own stop, and an administrator\'s, whose name the member does not see but the audit log keeps', async () => {
    harness();
    backend.images.add(IMAGE);
    const { client: admin } = await h.setupAdmin('boss');
    const alice = await h.createMember(admin, 'alice');
    const runtimeId = await startOwn(alice.client);

    await h.platform.runtimes.settled((await alice.client.post('/api/v1/runtime/stop')).body.runtime.id);
    const own = (await alice.client.get('/api/v1/runtime')).body;
    expect(own).toMatchObject({ state: 'stopped', stoppedBy: { cause: 'member', at: isoNow() } });
    expect(own.stateReason).toMatch(/^Stopped by its owner at /);

    await startOwn(alice.client);
    h.clock.advance(60_000);
    const stop = await admin.post(`/api/v1/admin/users/${alice.userId}/runtime/stop`);
    expect(stop.status).toBe(202);
    await h.platform.runtimes.settled(runtimeId);
    const res = await alice.client.get('/api/v1/runtime');
    expect(res.body).toMatchObject({ state: 'stopped', stoppedBy: { cause: 'admin', at: isoNow(), detail: null, idleMinutes: null } });
    expect(res.body.stateReason).toMatch(/^Stopped by an administrator at /);
    expect(res.text).not.toContain('boss');
    const audit = (await admin.get('/api/v1/admin/audit?action=runtime.stop')).body.items;
    expect(audit[0]).toMatchObject({ actor: { username: 'boss' }, target: { label: 'alice' } });
    // The administrators' own list names who did it; the member's view above never does.
    const listed = (await admin.get('/api/v1/admin/runtimes')).body.items.find((r: { username: string }) => r.username === 'alice');
    expect(listed).toMatchObject({ stoppedBy: { cause: 'admin' }, stoppedByAdmin: 'boss' });
    await startOwn(alice.client);
    const again = (await admin.get('/api/v1/admin/runtimes')).body.items.find((r: { username: string }) => r.username === 'alice');
    expect(again).toMatchObject({ stoppedBy: null, stoppedByAdmin: null });
  });

  test('a bulk stop by an administrator and disabling the account are told apart', async () => {
    harness();
    backend.images.add(IMAGE);
    const { client: admin } = await h.setupAdmin();
    const alice = await h.createMember(admin, 'alice');
    const bob = await h.createMember(admin, 'bob');
    const aliceRuntime = await startOwn(alice.client);
    const bobRuntime = await startOwn(bob.client);
    await admin.post('/api/v1/admin/runtimes/stop').send({ userIds: [alice.userId] });
    await admin.patch(`/api/v1/admin/users/${bob.userId}`).send({ status: 'disabled' });
    await Promise.all([h.platform.runtimes.settled(aliceRuntime), h.platform.runtimes.settled(bobRuntime)]);
    expect(h.platform.runtimes.viewForUser(alice.userId).stoppedBy?.cause).toBe('admin');
    const bobView = h.platform.runtimes.viewForUser(bob.userId);
    expect(bobView.stoppedBy?.cause).toBe('account_disabled');
    expect(bobView.stateReason).toMatch(/because the account was disabled$/);
  });

  describe('stops the watcher decides', () => {
    afterEach(() => h.platform.watcher.close());

    test('an out-of-memory kill is told as a stop by the platform, with the limit and when', async () => {
      harness({ memoryBytes: 256 * 1024 ** 2 });
      backend.images.add(IMAGE);
      await h.platform.watcher.start();
      const { client } = await h.setupAdmin();
      const runtimeId = await startOwn(client);
      const instanceId = [...backend.instances.keys()][0] ?? '';
      h.clock.advance(5 * 60_000);
      backend.crash(instanceId, { exitCode: 137, oom: true });
      await h.platform.watcher.drained();
      await h.platform.runtimes.settled(runtimeId);
      const view = (await client.get('/api/v1/runtime')).body;
      expect(view).toMatchObject({ state: 'stopped', desiredState: 'stopped', stoppedBy: { cause: 'out_of_memory', at: isoNow(), detail: 'out of memory (limit 256 MiB)' } });
      expect(view.stateReason).toMatch(/^Stopped by the platform at .* UTC: out of memory \(limit 256 MiB\)$/);

      await startOwn(client);
      expect((await client.get('/api/v1/runtime')).body).toMatchObject({ state: 'running', stoppedBy: null, lastError: null });
    });

    test('a crash loop the watcher gives up on says how often it exited', async () => {
      harness({ crashLoop: { maxExits: 2, windowMs: 60_000 } });
      backend.images.add(IMAGE);
      await h.platform.watcher.start();
      const { client } = await h.setupAdmin();
      await startOwn(client);
      const instanceId = [...backend.instances.keys()][0] ?? '';
      backend.crash(instanceId, { exitCode: 1 });
      await h.platform.watcher.drained();
      // The restart policy brings it back, and it dies again.
      await backend.start(instanceId);
      h.clock.advance(10_000);
      backend.crash(instanceId, { exitCode: 1 });
      await h.platform.watcher.drained();
      const view = (await client.get('/api/v1/runtime')).body;
      expect(view).toMatchObject({ desiredState: 'stopped', stoppedBy: { cause: 'crash_loop', at: isoNow(), detail: expect.stringContaining('exited 2 times within 60 s') } });
      expect(view.stateReason).toMatch(/^Stopped by the platform at .* UTC: OpenClaw exited 2 times within 60 s \(last exit code 1\)/);
    });
  });
});
