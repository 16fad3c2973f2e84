/**
 * The contract of the runtime ports, run against both implementations with the control plane as
 * production runs it (in a container, CLAWLOOPS_CONTROL_PLANE_CONTAINER=self) on the REAL engine:
 * the single-host Docker backend, and the Swarm backend on a single-node swarm this suite
 * initialises (and leaves at the end, unless the engine was in a swarm already). Lifecycle,
 * hardening, isolation between runtimes, files (running and stopped), the model gateway by its
 * alias, Traefik's labels, adoption after a restart of the control plane, and a clean removal.
 *
 * Run on its own (scripts/test.sh): a swarm changes the engine's networks for everything beside it.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type TestAgent from 'supertest/lib/agent';
import { docker, eventually, execIn, newInstanceId, STANDIN_IMAGE, sweep } from '../support/engine';
import { ensureSwarm, leaveSwarm, startControlPlane, sweepSwarm, type ControlPlane } from '../support/controlPlaneContainer';

jest.setTimeout(240_000);

type Backend = 'docker' | 'swarm';
const BACKENDS: Backend[] = ['swarm', 'docker'];
let initialisedSwarm = false;

beforeAll(async () => {
  initialisedSwarm = await ensureSwarm();
});

afterAll(async () => {
  if (initialisedSwarm) await leaveSwarm();
});

interface RuntimeView {
  id: string;
  state: string;
  reason?: string | null;
}

const SETTINGS = {
  CLAWLOOPS_RUNTIME_IMAGE: STANDIN_IMAGE,
  CLAWLOOPS_RUNTIME_MEMORY: '256mb',
  CLAWLOOPS_RUNTIME_CPUS: '0.5',
  CLAWLOOPS_RUNTIME_PIDS: '128',
  CLAWLOOPS_RUNTIME_READY_TIMEOUT: '60s',
  CLAWLOOPS_RUNTIME_STOP_TIMEOUT: '3s',
  CLAWLOOPS_ROUTER: 'traefik',
  CLAWLOOPS_RUNTIME_MODELS: 'test-model',
};

describe.each(BACKENDS)('the %s runtime backend', (backend) => {
  const instance = newInstanceId();
  let plane: ControlPlane;
  let admin: TestAgent;
  const members = new Map<string, TestAgent>();

  const it = (name: string, body: () => Promise<void>) =>
    test(name, async () => {
      try {
        await body();
      } catch (err) {
        process.stderr.write(`--- control plane (${backend}) log\n${await plane.logs(60)}\n`);
        throw err;
      }
    });

  async function member(username: string): Promise<TestAgent> {
    const known = members.get(username);
    if (known) return known;
    const inv = await admin.post('/api/v1/admin/invitations').send({ role: 'member' });
    expect(inv.status).toBe(201);
    const secret = (inv.body as { link: string }).link.split('/invite/')[1];
    const client = plane.client();
    const res = await client.post(`/api/v1/invitations/${secret}/accept`).send({ username, password: 'Correct-Horse-Battery-9' });
    expect(res.status).toBe(201);
    members.set(username, client);
    return client;
  }

  async function runtimeOf(client: TestAgent): Promise<RuntimeView> {
    const res = await client.get('/api/v1/runtime');
    expect(res.status).toBe(200);
    return res.body as RuntimeView;
  }

  async function settle(client: TestAgent, states: string[]): Promise<RuntimeView> {
    return eventually(
      async () => {
        const view = await runtimeOf(client);
        return states.includes(view.state) ? view : undefined;
      },
      `the runtime to be ${states.join(' or ')}`,
      120_000,
      500,
    );
  }

  async function startRuntime(client: TestAgent): Promise<RuntimeView> {
    const res = await client.post('/api/v1/runtime/start');
    expect([200, 202]).toContain(res.status);
    return settle(client, ['running', 'failed', 'unhealthy']);
  }

  /** The container the runtime runs in (this node: the swarm is one node here). */
  async function containerOf(username: string): Promise<string> {
    return eventually(
      async () => {
        const all = await docker.listContainers({ filters: JSON.stringify({ label: [`io.clawloops.instance=${instance}`, 'io.clawloops.role=runtime', `io.clawloops.username=${username}`] }) });
        return all[0]?.Id;
      },
      `${username}'s runtime container`,
    );
  }

  beforeAll(async () => {
    plane = await startControlPlane({ ...SETTINGS, CLAWLOOPS_RUNTIME_BACKEND: backend }, instance);
    admin = await plane.admin();
  });

  afterAll(async () => {
    await plane?.remove();
    if (backend === 'swarm') await sweepSwarm(instance);
    await sweep(instance);
  });

  it('starts a runtime that the control plane reaches, on its own network', async () => {
    const alice = await member('alice');
    const view = await startRuntime(alice);
    expect(view.state).toBe('running');
    if (backend === 'swarm') {
      const services = (await docker.listServices({ filters: JSON.stringify({ label: [`io.clawloops.instance=${instance}`, 'io.clawloops.role=runtime'] }) })) as { Spec: { Name: string; Mode: { Replicated?: { Replicas: number } }; EndpointSpec?: { Mode: string } } }[];
      expect(services).toHaveLength(1);
      expect(services[0]?.Spec.Mode.Replicated?.Replicas).toBe(1);
      expect(services[0]?.Spec.EndpointSpec?.Mode).toBe('dnsrr');
      const network = await docker.getNetwork(`clawloops-net-${view.id}`).inspect();
      expect(network).toMatchObject({ Driver: 'overlay', Internal: true, Attachable: true });
    }
  });

  it('runs it hardened: uid 1000, no capabilities, no new privileges, limits, no ports, no socket', async () => {
    const id = await containerOf('alice');
    const info = await docker.getContainer(id).inspect();
    expect(info.Config.User).toBe('1000:1000');
    expect(info.HostConfig.CapDrop).toEqual(['ALL']);
    expect(info.HostConfig.Init).toBe(true);
    expect(info.HostConfig.Memory).toBe(256 * 1024 ** 2);
    expect(info.HostConfig.NanoCpus).toBe(0.5e9);
    expect(info.HostConfig.PidsLimit).toBe(128);
    expect(info.HostConfig.Privileged).toBe(false);
    expect(Object.keys(info.NetworkSettings.Ports ?? {}).filter((p) => (info.NetworkSettings.Ports?.[p] ?? []).length > 0)).toEqual([]);
    expect(info.Mounts.map((m) => m.Destination)).toEqual(['/home/node/.openclaw']);
    // The gateway's own process (not the container's init, not an exec: those get their flags from
    // the engine; on a swarm only what runs under setpriv has no-new-privileges).
    const probe = await execIn(id, [
      'node',
      '-e',
      "const fs=require('fs');for(const p of fs.readdirSync('/proc')){if(!/^\\d+$/.test(p)||Number(p)===process.pid)continue;try{const a=fs.readFileSync('/proc/'+p+'/cmdline','utf8').split('\\0');if(/node$/.test(a[0])&&/(server|index)\\.js$/.test(a[1])){const s=fs.readFileSync('/proc/'+p+'/status','utf8');console.log(s.match(/NoNewPrivs:\\s*(\\d)/)[1], s.match(/CapEff:\\s*(\\w+)/)[1], s.match(/Uid:\\s*(\\d+)/)[1]);break}}catch{}}",
    ]);
    expect(probe.stdout.trim()).toBe('1 0000000000000000 1000');
  });

  it('carries the Traefik router labels of its backend', async () => {
    const alice = await runtimeOf(await member('alice'));
    const labels: Record<string, string> =
      backend === 'swarm'
        ? ((await docker.listServices({ filters: JSON.stringify({ label: [`io.clawloops.runtime-id=${alice.id}`, 'io.clawloops.role=runtime'] }) })) as { Spec: { Labels: Record<string, string> } }[])[0]?.Spec.Labels ?? {}
        : (await docker.getContainer(await containerOf('alice')).inspect()).Config.Labels;
    expect(labels['traefik.enable']).toBe('true');
    expect(labels[`traefik.http.routers.clawloops-rt-${alice.id}.rule`]).toContain('alice.');
    expect(labels[`traefik.${backend}.network`]).toBe(`clawloops-net-${alice.id}`);
  });

  it('reaches the model gateway by its alias with its own key, and nothing of another runtime', async () => {
    const bob = await member('bob');
    expect((await startRuntime(bob)).state).toBe('running');
    const bobInfo = await docker.getContainer(await containerOf('bob')).inspect();
    const bobAddress = Object.values(bobInfo.NetworkSettings.Networks).map((n) => n.IPAddress).find(Boolean);
    expect(bobAddress).toBeTruthy();
    const aliceId = await containerOf('alice');
    // No model service is configured here: the gateway answers its own key past authentication
    // (to say the upstream is missing) and refuses any other key.
    const gateway = await execIn(aliceId, [
      'node',
      '-e',
      "const ask=(k)=>fetch('http://clawloops-control-plane:8080/llm/v1/models',{headers:{authorization:'Bearer '+k}}).then(r=>r.status,e=>'error '+e.cause?.code);Promise.all([ask(process.env.CLAWLOOPS_MODEL_KEY),ask('sk-not-a-key')]).then(s=>console.log(s.join(' ')))",
    ]);
    const [own, other] = gateway.stdout.trim().split(' ');
    expect(other).toBe('401');
    expect(own).toMatch(/^\d+$/);
    expect(own).not.toBe('401');
    const reach = await execIn(aliceId, [
      'node',
      '-e',
      `const s=require('net').connect(18789,'${bobAddress}');s.setTimeout(3000,()=>{console.log('timeout');process.exit(0)});s.on('connect',()=>{console.log('connected');process.exit(0)});s.on('error',e=>{console.log(e.code);process.exit(0)})`,
    ]);
    expect(reach.stdout.trim()).not.toBe('connected');
  });

  it('moves files in and out while the runtime runs and while it is stopped, refusing traversal', async () => {
    const alice = await member('alice');
    const upload = await alice.post('/api/v1/files/upload').attach('files', Buffer.from('hello from the swarm\n'), { filename: 'note.txt' });
    expect(upload.status).toBe(201);
    const listed = await alice.get('/api/v1/files');
    expect(listed.status).toBe(200);
    expect(JSON.stringify(listed.body)).toContain('note.txt');
    const traversal = await alice.get('/api/v1/files/download?path=../../etc/passwd');
    expect(traversal.status).toBe(400);

    expect((await alice.post('/api/v1/runtime/stop')).status).toBeLessThan(300);
    await settle(alice, ['stopped']);
    const download = await alice.get('/api/v1/files/download?path=note.txt').buffer(true);
    expect(download.status).toBe(200);
    expect(download.text ?? download.body.toString()).toBe('hello from the swarm\n');
    const saved = await alice.put('/api/v1/files/text?path=later.txt').set('content-type', 'text/plain').set('If-None-Match', '*').send('written while stopped\n');
    expect(saved.status).toBeLessThan(300);
    // The runtime finds what was written while it was stopped.
    expect((await startRuntime(alice)).state).toBe('running');
    const seen = await execIn(await containerOf('alice'), ['node', '-e', "process.stdout.write(require('fs').readFileSync('/home/node/.openclaw/workspace/later.txt','utf8'))"]);
    expect(seen.stdout).toBe('written while stopped\n');
  });

  it('adopts its runtimes after the control plane restarts', async () => {
    const alice = await member('alice');
    const before = await runtimeOf(alice);
    await plane.restart();
    const again = await plane.admin();
    admin = again;
    const signedIn = plane.client();
    expect((await signedIn.post('/api/v1/auth/login').send({ username: 'alice', password: 'Correct-Horse-Battery-9' })).status).toBe(200);
    members.set('alice', signedIn);
    const after = await settle(signedIn, ['running']);
    expect(after.id).toBe(before.id);
  });

  it('removes everything of a deleted account: its runtime, network and data', async () => {
    const bob = await runtimeOf(await member('bob'));
    const users = (await admin.get('/api/v1/admin/users')).body as { items: { id: string; username: string }[] };
    const bobUser = users.items.find((u) => u.username === 'bob');
    expect(bobUser).toBeDefined();
    expect((await admin.delete(`/api/v1/admin/users/${bobUser?.id}`)).status).toBeLessThan(300);
    await eventually(
      async () => {
        const services = backend === 'swarm' ? ((await docker.listServices({ filters: JSON.stringify({ label: [`io.clawloops.runtime-id=${bob.id}`] }) })) as unknown[]) : [];
        const containers = await docker.listContainers({ all: true, filters: JSON.stringify({ label: [`io.clawloops.runtime-id=${bob.id}`] }) });
        const networks = await docker.listNetworks({ filters: JSON.stringify({ label: [`io.clawloops.runtime-id=${bob.id}`] }) });
        const volumes = (await docker.listVolumes({ filters: JSON.stringify({ label: [`io.clawloops.runtime-id=${bob.id}`] }) })).Volumes ?? [];
        return services.length + containers.length + networks.length + volumes.length === 0 ? true : undefined;
      },
      "bob's runtime resources to go",
      90_000,
      500,
    );
  });
});

describe('an installation switched from one engine to a swarm', () => {
  const instance = newInstanceId();
  let dataDir = '';
  let plane: ControlPlane | null = null;

  afterAll(async () => {
    await plane?.remove();
    await sweepSwarm(instance);
    await sweep(instance);
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('keeps every member\'s files and runs their runtime on the node that holds them', async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'clawloops-switch-'));
    const settings = { ...SETTINGS, CLAWLOOPS_ROUTER: 'builtin' };
    plane = await startControlPlane({ ...settings, CLAWLOOPS_RUNTIME_BACKEND: 'docker' }, instance, { dataDir });
    const admin = await plane.admin();
    const inv = await admin.post('/api/v1/admin/invitations').send({ role: 'member' });
    const secret = (inv.body as { link: string }).link.split('/invite/')[1];
    const dana = plane.client();
    expect((await dana.post(`/api/v1/invitations/${secret}/accept`).send({ username: 'dana', password: 'Correct-Horse-Battery-9' })).status).toBe(201);
    expect([200, 202]).toContain((await dana.post('/api/v1/runtime/start')).status);
    await eventually(async () => (((await dana.get('/api/v1/runtime')).body as RuntimeView).state === 'running' ? true : undefined), 'dana running on one engine', 120_000, 500);
    expect((await dana.post('/api/v1/files/upload').attach('files', Buffer.from('from the single-host days\n'), { filename: 'old.txt' })).status).toBe(201);
    // docs/swarm.md: stop every runtime, then switch the backend.
    expect((await dana.post('/api/v1/runtime/stop')).status).toBeLessThan(300);
    await eventually(async () => (((await dana.get('/api/v1/runtime')).body as RuntimeView).state === 'stopped' ? true : undefined), 'dana stopped', 60_000, 500);
    const runtimeId = ((await dana.get('/api/v1/runtime')).body as RuntimeView).id;
    await plane.remove();

    plane = await startControlPlane({ ...settings, CLAWLOOPS_RUNTIME_BACKEND: 'swarm' }, instance, { dataDir });
    const again = plane.client();
    expect((await again.post('/api/v1/auth/login').send({ username: 'dana', password: 'Correct-Horse-Battery-9' })).status).toBe(200);
    const listed = await again.get('/api/v1/files');
    expect(JSON.stringify(listed.body)).toContain('old.txt');
    expect([200, 202]).toContain((await again.post('/api/v1/runtime/start')).status);
    const view = await eventually(
      async () => {
        const v = (await again.get('/api/v1/runtime')).body as RuntimeView;
        if (v.state === 'failed') throw new Error(`start failed: ${v.reason ?? JSON.stringify(v)}`);
        return v.state === 'running' ? v : undefined;
      },
      'dana running on the swarm',
      120_000,
      500,
    );
    expect(view.id).toBe(runtimeId);
    const network = await docker.getNetwork(`clawloops-net-${runtimeId}`).inspect();
    expect(network.Driver).toBe('overlay');
    const [task] = await docker.listContainers({ filters: JSON.stringify({ label: [`io.clawloops.runtime-id=${runtimeId}`, 'io.clawloops.role=runtime'] }) });
    expect(task?.Labels['com.docker.swarm.service.id']).toBeTruthy();
    const seen = await execIn(task?.Id ?? '', ['node', '-e', "process.stdout.write(require('fs').readFileSync('/home/node/.openclaw/workspace/old.txt','utf8'))"]);
    expect(seen.stdout).toBe('from the single-host days\n');
  });
});
