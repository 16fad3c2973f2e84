/**
 * Staying true to reality, against the REAL Docker engine: what happens behind the manager's back
 * (OOM kills, docker kill / rm, crash loops, a control-plane restart, orphans) shows up in the
 * API from Docker's own events and start-up reconciliation. Stand-in image, unique instance label,
 * sweep at the end, logs dumped on failure.
 */
import fs from 'node:fs';
import http from 'node:http';
import type TestAgent from 'supertest/lib/agent';
import { LABELS } from '../../src/docker/runtimeBackend';
import { AuditRepository } from '../../src/db/repositories/auditRepository';
import { RuntimeRepository } from '../../src/db/repositories/runtimeRepository';
import { AuditLog } from '../../src/domain/audit';
import { createLogger } from '../../src/lib/logger';
import { runtimeNames } from '../../src/docker/runtimeContainer';
import { DockerRuntimeProvisioner } from '../../src/docker/dockerRuntimeProvisioner';
import { RuntimeWatcher } from '../../src/runtime/runtimeWatcher';
import { STRONG_PASSWORD, errorCode, tempDataDir } from '../support/harness';
import {
  docker,
  engineHarness,
  eventually,
  newInstanceId,
  STANDIN_IMAGE,
  sweep,
  withDiagnostics,
  type EngineHarness,
} from '../support/engine';

jest.setTimeout(180_000);

const instance = newInstanceId();
const dataDir = tempDataDir('clawloops-reality-');
let h: EngineHarness;
let admin: TestAgent;

const it = (name: string, body: () => Promise<void>) => test(name, withDiagnostics(() => instance, () => h.logs.text, body));

type View = { id: string; state: string; stateReason: string | null; stoppedBy: { cause: string; detail: string | null } | null; desiredState: string; lastError: { code: string; message: string } | null; outdatedImage: boolean; configStale: boolean; image: string };

async function startRunning(client: TestAgent): Promise<View> {
  const res = await client.post('/api/v1/runtime/start');
  expect([200, 202]).toContain(res.status);
  await h.platform.runtimes.settled(res.body.runtime.id);
  const view = (await client.get('/api/v1/runtime')).body as View;
  expect(view.state).toBe('running');
  return view;
}

const containerIdOf = (runtimeId: string) =>
  (h.platform.db.prepare('SELECT container_id FROM runtimes WHERE id = ?').get(runtimeId) as { container_id: string }).container_id;

async function addressOf(runtimeId: string): Promise<string> {
  const info = await docker.getContainer(containerIdOf(runtimeId)).inspect();
  return info.NetworkSettings.Networks[runtimeNames(runtimeId).network]?.IPAddress ?? '';
}

/** Calls one of the stand-in's test hooks on the container's own address. */
function standinHook(address: string, path: string): Promise<number | null> {
  return new Promise((resolve) => {
    const req = http.request({ host: address, port: 18789, path, method: 'POST', timeout: 5000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? null);
    });
    req.on('error', () => resolve(null));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

const viewOf = async (client: TestAgent) => (await client.get('/api/v1/runtime')).body as View;
const stateIs = (client: TestAgent, state: string) => async () => {
  const view = await viewOf(client);
  return view.state === state ? view : undefined;
};

beforeAll(async () => {
  h = engineHarness({ instance, dataDir });
  await h.platform.watcher.start();
  ({ client: admin } = await h.setupAdmin());
});

afterAll(async () => {
  h.platform.watcher.close();
  await h.platform.runtimes.drain(30_000);
  h.close();
  await sweep(instance);
  await docker.getImage(`clawloops/runtime-standin:${instance}`).remove().catch(() => undefined);
  fs.rmSync(dataDir, { recursive: true, force: true });
});

describe('events from the engine', () => {
  it('an OOM kill shows as "stopped: out of memory (limit 256 MiB)" and is not restarted', async () => {
    const { client } = await h.createMember(admin, 'oscar');
    const view = await startRunning(client);
    const address = await addressOf(view.id);
    await standinHook(address, '/__standin/allocate?mb=600');
    const after = await eventually(async () => {
      const v = await viewOf(client);
      return v.state === 'stopped' && v.lastError ? v : undefined;
    }, 'the OOM kill to be reported');
    expect(after).toMatchObject({ desiredState: 'stopped', lastError: { code: 'OOM_KILLED' }, stoppedBy: { cause: 'out_of_memory', detail: 'out of memory (limit 256 MiB)' } });
    expect(after.stateReason).toMatch(/^Stopped by the platform at .* UTC: out of memory \(limit 256 MiB\)$/);
    const info = await docker.getContainer(containerIdOf(view.id)).inspect();
    expect(info.State.Running).toBe(false);
    const audit = (await admin.get('/api/v1/admin/audit?action=runtime.failure-stop')).body.items;
    expect(audit.some((e: { target: { label: string } }) => e.target.label === 'oscar')).toBe(true);
    // Starting again clears the error.
    expect((await startRunning(client)).lastError).toBeNull();
  });

  it('an external `docker kill` is reflected from the die event', async () => {
    const { client } = await h.createMember(admin, 'kilian');
    const view = await startRunning(client);
    await docker.getContainer(containerIdOf(view.id)).kill();
    const after = await eventually(async () => {
      const v = await viewOf(client);
      return v.state !== 'running' ? v : undefined;
    }, 'the kill to be reflected', 5_000);
    expect(['stopped', 'starting']).toContain(after.state);
  });

  it('an external `docker rm -f` makes the runtime absent, and a start re-creates it with the same data volume', async () => {
    const { client } = await h.createMember(admin, 'rhea');
    const view = await startRunning(client);
    const first = containerIdOf(view.id);
    await docker.getContainer(first).remove({ force: true });
    await eventually(stateIs(client, 'absent'), 'the removal to be reflected', 5_000);
    expect(containerIdOf(view.id)).toBeNull();
    const again = await startRunning(client);
    expect(again.id).toBe(view.id);
    expect(containerIdOf(view.id)).not.toBe(first);
    const info = await docker.getContainer(containerIdOf(view.id)).inspect();
    expect(info.Mounts[0]?.Name).toBe(runtimeNames(view.id).volume);
  });

  it('a runtime that keeps crashing is stopped and reported instead of restarted forever', async () => {
    const { client } = await h.createMember(admin, 'crash');
    const view = await startRunning(client);
    const { maxExits } = h.platform.runtimes.settings.crashLoop;
    for (let i = 0; i < maxExits; i++) {
      // Docker's restart policy brings it back after each exit until the watcher steps in.
      const address = await eventually(async () => {
        const info = await docker.getContainer(containerIdOf(view.id)).inspect();
        if (!info.State.Running) return undefined;
        const ip = info.NetworkSettings.Networks[runtimeNames(view.id).network]?.IPAddress;
        return ip && (await standinHook(ip, '/__standin/exit?code=1')) === 200 ? ip : undefined;
      }, `crash ${i + 1}`);
      expect(address).toBeTruthy();
    }
    const failed = await eventually(stateIs(client, 'failed'), 'the crash loop to be reported');
    expect(failed.lastError?.code).toBe('CRASH_LOOP');
    expect(failed.stateReason).toMatch(new RegExp(`exited ${maxExits} times within 300 s \\(last exit code 1\\)`));
    expect(failed.stateReason).toMatch(/standin: exiting with code 1 on request/);
    expect(failed.desiredState).toBe('stopped');
    // Stopped by the platform (a stop Docker's restart policy honours), not merely between two restarts.
    const state = await eventually(async () => {
      const { State } = await docker.getContainer(containerIdOf(view.id)).inspect();
      return !State.Running && !State.Restarting ? State : undefined;
    }, 'the crash-looping container to be stopped');
    expect(state.Running).toBe(false);
  });
});

describe('failures at start', () => {
  it('a start with a missing image that cannot be pulled fails with a message naming the image', async () => {
    const { client } = await h.createMember(admin, 'nimg');
    const settings = h.platform.runtimeSettings;
    const original = settings.get().image;
    settings.set({ image: `clawloops/no-such-image:${instance}` });
    try {
      const res = await client.post('/api/v1/runtime/start');
      expect(res.status).toBe(202);
      await h.platform.runtimes.settled(res.body.runtime.id);
      const view = await viewOf(client);
      expect(view.state).toBe('absent');
      expect(view.desiredState).toBe('stopped');
      expect(view.lastError?.code).toBe('IMAGE_PULL_FAILED');
      expect(view.lastError?.message).toContain(`clawloops/no-such-image:${instance}`);
      expect(view.lastError?.message).toMatch(/could not be downloaded: .+/);
    } finally {
      settings.set({ image: original });
    }
  });

  it('a runtime that never becomes ready fails with the reason and its last log lines, and is stopped', async () => {
    const { client } = await h.createMember(admin, 'slow');
    const settings = h.platform.runtimeSettings;
    const original = settings.get();
    // The stand-in only listens on PORT: pointing it elsewhere means /healthz never answers.
    settings.set({ command: ['/usr/local/bin/node', '-e', "console.error('booting forever'); setInterval(() => {}, 1000)"], readyTimeoutMs: 5_000 });
    try {
      const res = await client.post('/api/v1/runtime/start');
      await h.platform.runtimes.settled(res.body.runtime.id);
      const view = await viewOf(client);
      expect(view.state).toBe('failed');
      expect(view.lastError?.code).toBe('READY_TIMEOUT');
      expect(view.stateReason).toMatch(/did not become ready within 5 s \(\/healthz never answered\); it was stopped/);
      expect(view.stateReason).toMatch(/! booting forever/);
      expect((await docker.getContainer(containerIdOf(view.id)).inspect()).State.Running).toBe(false);
    } finally {
      settings.set({ command: original.command, readyTimeoutMs: original.readyTimeoutMs });
    }
  });
});

describe('configuration and image changes', () => {
  it('a changed rendered input marks the runtime stale; the next start re-creates it', async () => {
    const { client } = await h.createMember(admin, 'stale');
    const view = await startRunning(client);
    const before = containerIdOf(view.id);
    const settings = h.platform.runtimeSettings;
    const models = settings.get().models;
    settings.set({ models: [...models, 'another-model'] });
    try {
      expect((await viewOf(client)).configStale).toBe(true);
      const listed = (await admin.get('/api/v1/admin/runtimes')).body.items.find((r: { username: string }) => r.username === 'stale');
      expect(listed.configStale).toBe(true);
      const res = await client.post('/api/v1/runtime/start');
      expect(res.status).toBe(202);
      await h.platform.runtimes.settled(view.id);
      expect(await viewOf(client)).toMatchObject({ state: 'running', configStale: false });
      expect(containerIdOf(view.id)).not.toBe(before);
    } finally {
      settings.set({ models });
    }
  });

  it('a runtime on another image than the configured one is flagged, and upgrades on restart', async () => {
    const { client } = await h.createMember(admin, 'upgr');
    const view = await startRunning(client);
    const newTag = `clawloops/runtime-standin:${instance}`;
    await docker.getImage(STANDIN_IMAGE).tag({ repo: 'clawloops/runtime-standin', tag: instance });
    const settings = h.platform.runtimeSettings;
    settings.set({ image: newTag });
    try {
      expect(await viewOf(client)).toMatchObject({ outdatedImage: true, image: STANDIN_IMAGE });
      const res = await client.post('/api/v1/runtime/restart');
      await h.platform.runtimes.settled(res.body.runtime.id);
      expect(await viewOf(client)).toMatchObject({ state: 'running', outdatedImage: false, image: newTag });
      expect((await docker.getContainer(containerIdOf(view.id)).inspect()).Config.Image).toBe(newTag);
    } finally {
      settings.set({ image: STANDIN_IMAGE });
    }
  });
});

describe('many users at once', () => {
  it('ten users starting at once all end up running; those beyond the parallel limit are told they queue', async () => {
    const users = await Promise.all(Array.from({ length: 10 }, (_, i) => h.createMember(admin, `crowd-${i}`)));
    const answers = await Promise.all(users.map((u) => u.client.post('/api/v1/runtime/start')));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(202));
    const queued = answers.filter((a) => a.body.operation.step === 'queued' && typeof a.body.operation.queuePosition === 'number');
    expect(queued.length).toBeGreaterThanOrEqual(10 - h.platform.runtimes.settings.maxParallelOperations);
    expect(queued.some((a) => /^Queued/.test(a.body.operation.message))).toBe(true);
    await Promise.all(answers.map((a) => h.platform.runtimes.settled(a.body.runtime.id)));
    const states = await Promise.all(users.map(async (u) => (await viewOf(u.client)).state));
    expect(states).toEqual(Array(10).fill('running'));
  });
});

describe('account lifecycle', () => {
  it("disabling a user stops their runtime; deleting them removes container, network and volume", async () => {
    const { client, userId } = await h.createMember(admin, 'leaver');
    const view = await startRunning(client);
    const disable = await admin.patch(`/api/v1/admin/users/${userId}`).send({ status: 'disabled' });
    expect(disable.status).toBe(200);
    await eventually(async () => {
      const v = (await admin.get(`/api/v1/admin/users/${userId}/runtime`)).body as View;
      return v.state === 'stopped' ? v : undefined;
    }, 'the runtime of the disabled user to stop');
    const refused = await admin.post(`/api/v1/admin/users/${userId}/runtime/start`);
    expect(refused.status).toBe(409);
    expect(errorCode(refused)).toBe('USER_DISABLED');

    expect((await admin.delete(`/api/v1/admin/users/${userId}`)).status).toBe(204);
    const names = runtimeNames(view.id);
    await eventually(async () => {
      const gone = await Promise.all([
        docker.getVolume(names.volume).inspect().then(() => false, () => true),
        docker.getNetwork(names.network).inspect().then(() => false, () => true),
        docker.listContainers({ all: true, filters: JSON.stringify({ label: [`${LABELS.userId}=${userId}`] }) }).then((l) => l.length === 0),
      ]);
      return gone.every(Boolean) ? true : undefined;
    }, 'the deleted user’s resources to be removed');
  });
});

describe('control-plane restart', () => {
  it('adopts running containers, restarts what should run, and removes orphans', async () => {
    const { client } = await h.createMember(admin, 'survivor');
    const survivor = await startRunning(client);
    const { client: goneClient } = await h.createMember(admin, 'vanished');
    const vanished = await startRunning(goneClient);
    const survivorContainer = containerIdOf(survivor.id);
    const vanishedContainer = containerIdOf(vanished.id);

    // The control plane goes away; containers keep running.
    h.platform.watcher.close();
    await h.platform.runtimes.drain(30_000);
    h.close();

    // Meanwhile: someone removes one runtime's container, and a managed container of no runtime appears.
    await docker.getContainer(vanishedContainer).remove({ force: true });
    const orphan = await docker.createContainer({
      Image: STANDIN_IMAGE,
      name: `clawloops-ghost-${instance}`,
      Labels: { [LABELS.managed]: 'true', [LABELS.instance]: instance, [LABELS.role]: 'runtime', [LABELS.runtimeId]: 'ghost', [LABELS.userId]: 'ghost', [LABELS.username]: 'ghost' },
    });
    await orphan.start();

    h = engineHarness({ instance, dataDir });
    const report = await h.platform.watcher.start();
    // Also restarted: any earlier test's runtime that should run but was stopped behind our back (docker kill).
    expect(report).toMatchObject({ orphanContainersRemoved: 1, missingContainersCleared: 1 });
    expect(report?.restarted).toBeGreaterThanOrEqual(1);
    await expect(orphan.inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect(h.logs.text).toMatch(/removed a runtime instance that belongs to no runtime/);

    admin = h.client();
    expect((await admin.post('/api/v1/auth/login').send({ username: 'admin', password: STRONG_PASSWORD })).status).toBe(200);
    const audit = (await admin.get('/api/v1/admin/audit?action=runtime.orphan-removed')).body.items;
    expect(audit).toHaveLength(1);
    expect(audit[0].target.label).toBe(`clawloops-ghost-${instance}`);

    const survivorClient = h.client();
    await survivorClient.post('/api/v1/auth/login').send({ username: 'survivor', password: STRONG_PASSWORD });
    const adopted = await eventually(stateIs(survivorClient, 'running'), 'the survivor to be adopted as running');
    expect(containerIdOf(adopted.id)).toBe(survivorContainer);

    const vanishedClient = h.client();
    await vanishedClient.post('/api/v1/auth/login').send({ username: 'vanished', password: STRONG_PASSWORD });
    await h.platform.runtimes.settled(vanished.id);
    expect((await viewOf(vanishedClient)).state).toBe('running');
  });
});

describe('event stream drops', () => {
  it('reconnects and re-reads the full state, so what happened meanwhile is not missed', async () => {
    const { client } = await h.createMember(admin, 'dropper');
    const view = await startRunning(client);
    // What an engine restart looks like from here: the events request ends with an error.
    const ends: ((error: Error | null) => void)[] = [];
    const closes: (() => void)[] = [];
    const real = h.backend.subscribeEvents.bind(h.backend);
    const backend = Object.create(h.backend) as typeof h.backend;
    backend.subscribeEvents = async (onEvent, onEnd) => {
      const sub = await real(onEvent, onEnd);
      ends.push(onEnd);
      closes.push(() => sub.close());
      return sub;
    };
    h.platform.watcher.close();
    const watcher = new RuntimeWatcher({
      manager: h.platform.runtimes,
      runtimes: new RuntimeRepository(h.platform.db),
      provisioner: new DockerRuntimeProvisioner(backend, h.platform.runtimes.settings, createLogger('silent'), h.platform.installation),
      audit: new AuditLog(new AuditRepository(h.platform.db), h.clock),
      clock: h.clock,
      logger: createLogger('info', h.logs),
      settings: h.platform.runtimeSettings,
      maxReconnectDelayMs: 200,
    });
    try {
      await watcher.start();
      expect(ends).toHaveLength(1);
      closes[0]?.();
      // While nobody listens, the container goes away; only then does the feed report its end (the
      // other way round, a reconnect quicker than a busy engine's removal raced it and found the
      // container still there).
      const before = containerIdOf(view.id);
      await docker.getContainer(before).remove({ force: true });
      ends[0]?.(new Error('socket hang up'));
      await eventually(() => (/runtime change feed restored and state re-read/.test(h.logs.text) ? true : undefined), 'the reconnect');
      expect(ends.length).toBeGreaterThan(1);
      expect(h.logs.text).toMatch(/runtime change feed dropped; reconnecting/);
      // The reconcile found the container gone and started the runtime again, since it should run.
      await eventually(async () => {
        const current = containerIdOf(view.id);
        return current && current !== before && (await viewOf(client)).state === 'running' ? true : undefined;
      }, 'a new container, running');
    } finally {
      watcher.close();
    }
  });
});
