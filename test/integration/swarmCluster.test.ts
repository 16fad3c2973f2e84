/**
 * ClawLoops on a swarm of several machines, for real: three Docker engines in containers on this
 * machine (scripts/swarm-lab/lab.sh: a manager and two workers, joined into one swarm), the
 * control plane in a container on the manager as docker-compose.swarm.yml runs it. Runtimes are
 * placed on the workers, their memory and CPU figures come from every node, files are read and
 * written on them through their file agents, a drained node and a stopped node are reported with
 * their reason, and a runtime moves between workers with its data, or without it when its node
 * is lost.
 *
 * Run on its own (scripts/test.sh): three engines and their runtimes take the machine.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import Docker from 'dockerode';
import supertest from 'supertest';
import type TestAgent from 'supertest/lib/agent';
import { ADMIN, NODE_BASE_IMAGE, startControlPlane, type ControlPlane } from '../support/controlPlaneContainer';
import { docker, eventually, execIn, STANDIN_IMAGE } from '../support/engine';

jest.setTimeout(600_000);

const ROOT = path.resolve(__dirname, '..', '..');
const LAB = path.join(ROOT, 'scripts', 'swarm-lab', 'lab.sh');
const PASSWORD = 'Correct-Horse-Battery-9';
const INSTANCE = 'cluster';
const PORT = 18080;

function lab(args: string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [LAB, ...args], { env: { ...process.env, ...env }, timeout: 15 * 60_000, maxBuffer: 64 * 1024 ** 2 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`lab.sh ${args.join(' ')} failed: ${err.message}\n${stderr.slice(-4000)}`));
      else resolve(stdout.trim());
    });
  });
}

let manager: Docker;
let url: string;
let plane: ControlPlane;
let admin: TestAgent;
const nodeIds = new Map<string, string>();

interface RuntimeView {
  id: string;
  userId: string;
  state: string;
  stateReason: string | null;
}
interface Overview {
  backend: string;
  nodes: { id: string; hostname: string; role: string; state: string; availability: string; runtimes: number; running: number }[];
  runtimes: { runtimeId: string; username: string; node: string | null }[];
}

const client = (): TestAgent => supertest.agent(url).set('Origin', url);

async function member(username: string): Promise<TestAgent> {
  const inv = await admin.post('/api/v1/admin/invitations').send({ role: 'member' });
  expect(inv.status).toBe(201);
  const secret = (inv.body as { link: string }).link.split('/invite/')[1];
  const agent = client();
  expect((await agent.post(`/api/v1/invitations/${secret}/accept`).send({ username, password: PASSWORD })).status).toBe(201);
  return agent;
}

const runtimeOf = async (agent: TestAgent): Promise<RuntimeView> => (await agent.get('/api/v1/runtime')).body as RuntimeView;

async function until(agent: TestAgent, what: string, check: (view: RuntimeView) => boolean, timeoutMs = 120_000): Promise<RuntimeView> {
  return eventually(
    async () => {
      const view = await runtimeOf(agent);
      return check(view) ? view : undefined;
    },
    what,
    timeoutMs,
    500,
  );
}

const overview = async (): Promise<Overview> => (await admin.get('/api/v1/admin/nodes')).body as Overview;
const hostnameOf = (overviewed: Overview, nodeId: string | null) => overviewed.nodes.find((n) => n.id === nodeId)?.hostname ?? null;

async function nodeOfRuntime(runtimeId: string): Promise<string> {
  const seen = await overview();
  const hostname = hostnameOf(seen, seen.runtimes.find((r) => r.runtimeId === runtimeId)?.node ?? null);
  if (!hostname) throw new Error(`runtime ${runtimeId} is not placed`);
  return hostname;
}

/** A node's own engine: what runs there, seen from the node itself. */
async function nodeEngine(hostname: string): Promise<Docker> {
  return new Docker({ socketPath: await lab(['socket', hostname]) });
}

/** How many entries a volume holds at its root, seen by a throwaway container on its node. */
async function entriesIn(engine: Docker, volume: string): Promise<number> {
  const container = await engine.createContainer({
    Image: STANDIN_IMAGE,
    Entrypoint: ['/usr/local/bin/node', '-e', "process.stdout.write(String(require('fs').readdirSync('/v').length))"],
    User: '0:0',
    HostConfig: { Binds: [`${volume}:/v:ro`], NetworkMode: 'none' },
  });
  try {
    await container.start();
    await container.wait();
    const out = (await container.logs({ stdout: true })) as Buffer;
    return Number(out.subarray(8).toString('utf8'));
  } finally {
    await container.remove({ force: true });
  }
}

async function setAvailability(hostname: string, availability: 'active' | 'drain'): Promise<void> {
  const node = manager.getNode(nodeIds.get(hostname) ?? hostname);
  // The swarm updates a node's object itself too (the network attachments of the tasks it gains or
  // loses, as when it is drained): an update that names the version read just before may be late.
  for (let attempt = 0; ; attempt++) {
    const info = (await node.inspect()) as { Version: { Index: number }; Spec: Record<string, unknown> };
    try {
      await node.update({ version: info.Version.Index, ...info.Spec, Availability: availability });
      return;
    } catch (err) {
      if (attempt >= 4 || !/update out of sequence/.test((err as Error).message)) throw err;
    }
  }
}

beforeAll(async () => {
  await lab(['up', '3'], { LAB_IMAGES: STANDIN_IMAGE, LAB_MOUNTS: `${ROOT}:/repo` });
  await lab(['load', '1'], { LAB_IMAGES: NODE_BASE_IMAGE });
  manager = new Docker({ socketPath: await lab(['socket', '1']) });
  for (const n of (await manager.listNodes()) as { ID: string; Description: { Hostname: string } }[]) nodeIds.set(n.Description.Hostname, n.ID);
  const managerIp = ((await docker.getContainer('clawloops-swarmlab-1').inspect()).NetworkSettings.Networks['clawloops-swarmlab']?.IPAddress ?? '').trim();
  plane = await startControlPlane(
    {
      CLAWLOOPS_RUNTIME_BACKEND: 'swarm',
      CLAWLOOPS_RUNTIME_IMAGE: STANDIN_IMAGE,
      CLAWLOOPS_RUNTIME_MEMORY: '256mb',
      CLAWLOOPS_RUNTIME_CPUS: '0.25',
      CLAWLOOPS_RUNTIME_READY_TIMEOUT: '90s',
      CLAWLOOPS_RUNTIME_STOP_TIMEOUT: '3s',
      CLAWLOOPS_RUNTIME_MODELS: 'test-model',
    },
    INSTANCE,
    { engine: manager, checkout: '/repo', address: managerIp, port: PORT, name: 'clawloops-control-plane' },
  );
  url = plane.url;
  admin = client();
  expect((await admin.post('/api/v1/auth/login').send(ADMIN)).status).toBe(200);
});

afterAll(async () => {
  if (process.env.KEEP_SWARM_LAB) return;
  await lab(['down']).catch((err: unknown) => process.stderr.write(`${(err as Error).message}\n`));
});

const controlPlaneLog = (): Promise<string> => plane.logs(60);

const it = (name: string, body: () => Promise<void>) =>
  test(name, async () => {
    try {
      await body();
    } catch (err) {
      process.stderr.write(`--- control plane log\n${await controlPlaneLog().catch(() => '')}\n`);
      throw err;
    }
  });

const members = new Map<string, TestAgent>();

it('spreads new runtimes over the nodes and runs them on the workers', async () => {
  for (const name of ['ann', 'ben', 'cat']) members.set(name, await member(name));
  for (const agent of members.values()) expect([200, 202]).toContain((await agent.post('/api/v1/runtime/start')).status);
  for (const agent of members.values()) await until(agent, 'a running runtime', (v) => v.state === 'running');
  const seen = await overview();
  expect(seen.backend).toBe('swarm');
  expect(seen.nodes).toHaveLength(3);
  // Each new runtime goes where the least memory is set aside (the administrator's own, not
  // started, counts too): the members' three land on three nodes.
  const hosts = new Set(seen.runtimes.filter((r) => members.has(r.username)).map((r) => hostnameOf(seen, r.node)));
  expect(hosts).toEqual(new Set(['clawloops-swarmlab-1', 'clawloops-swarmlab-2', 'clawloops-swarmlab-3']));
  for (const view of seen.nodes) expect(view).toMatchObject({ state: 'ready', availability: 'active', running: 1 });
});

interface ListedRuntime {
  id: string | null;
  username: string;
  stats: { memoryBytes: number; memoryLimitBytes: number; cpuPercent: number } | null;
  statsStale: boolean;
}

/** The admin's runtime list, as the console shows it: the members' runtimes in it. */
async function listedFigures(): Promise<ListedRuntime[]> {
  const items = ((await admin.get('/api/v1/admin/runtimes')).body as { items: ListedRuntime[] }).items;
  return items.filter((item) => members.has(item.username));
}

/** A member's runtime that runs on a worker, and where. */
async function memberOnAWorker(): Promise<{ username: string; runtimeId: string; node: string }> {
  for (const [username, agent] of members) {
    const runtimeId = (await runtimeOf(agent)).id;
    const node = await nodeOfRuntime(runtimeId);
    if (node !== 'clawloops-swarmlab-1') return { username, runtimeId, node };
  }
  throw new Error('no member runtime on a worker');
}

/** The container of a runtime's task, on its node. */
async function runtimeContainer(engine: Docker, runtimeId: string): Promise<string> {
  const [container] = await engine.listContainers({ filters: JSON.stringify({ label: ['io.clawloops.role=runtime', `io.clawloops.runtime-id=${runtimeId}`] }) });
  if (!container) throw new Error(`no container of runtime ${runtimeId} on this node`);
  return container.Id;
}

it("shows every running runtime's memory and CPU in the admin list, wherever it runs", async () => {
  const measured = await eventually(
    async () => {
      const listed = await listedFigures();
      return listed.length === 3 && listed.every((r) => r.stats && r.stats.memoryBytes > 0 && !r.statsStale) ? listed : undefined;
    },
    'figures of the three runtimes, one on each node',
    90_000,
    1_000,
  );
  for (const runtime of measured) {
    const stats = runtime.stats as NonNullable<ListedRuntime['stats']>;
    expect(stats.memoryLimitBytes).toBe(256 * 1024 ** 2);
    expect(stats.cpuPercent).toBeGreaterThanOrEqual(0);
    process.stdout.write(`figures of ${runtime.username}'s runtime on ${await nodeOfRuntime(runtime.id ?? '')}: ${(stats.memoryBytes / 1024 ** 2).toFixed(1)} MiB of ${stats.memoryLimitBytes / 1024 ** 2} MiB, CPU ${stats.cpuPercent.toFixed(2)}%\n`);
  }

  // The CPU figure is the runtime's own: a busy loop in a runtime on a worker shows (its limit is a quarter of a CPU).
  const worker = await memberOnAWorker();
  const engine = await nodeEngine(worker.node);
  const loop = execIn(await runtimeContainer(engine, worker.runtimeId), ['/usr/local/bin/node', '-e', 'const end = Date.now() + 25000; while (Date.now() < end);'], '1000:1000', engine);
  const loaded = await eventually(
    async () => {
      const listed = (await listedFigures()).find((r) => r.id === worker.runtimeId);
      return listed?.stats && listed.stats.cpuPercent > 15 ? listed.stats : undefined;
    },
    'the busy runtime to show its CPU',
    20_000,
    1_000,
  );
  process.stdout.write(`figures of ${worker.username}'s runtime on ${worker.node} while busy: ${(loaded.memoryBytes / 1024 ** 2).toFixed(1)} MiB, CPU ${loaded.cpuPercent.toFixed(2)}%\n`);
  expect(loaded.cpuPercent).toBeLessThan(40);
  await loop;
});

it('reads the figures through a node-stats service that runs least-privileged and that runtimes cannot reach', async () => {
  const [service] = (await manager.listServices({ filters: JSON.stringify({ label: ['io.clawloops.role=node-stats', `io.clawloops.instance=${INSTANCE}`] }) })) as Docker.Service[];
  if (!service?.Spec?.TaskTemplate || !('ContainerSpec' in service.Spec.TaskTemplate)) throw new Error('no node-stats service');
  expect(service.Spec.Mode).toEqual({ Global: {} });
  const spec = service.Spec.TaskTemplate.ContainerSpec as Record<string, unknown>;
  expect(spec).toMatchObject({ User: '1000:1000', ReadOnly: true, CapabilityDrop: ['ALL'], Mounts: [{ Type: 'bind', Source: '/sys/fs/cgroup', Target: '/host/cgroup', ReadOnly: true }] });
  expect((spec.Command as string[]).slice(0, 2)).toEqual(['/usr/bin/setpriv', '--no-new-privs']);
  expect(JSON.stringify(spec)).not.toContain('docker.sock');
  // Its network: the control plane and its tasks only.
  const networks = (service.Spec.TaskTemplate as { Networks?: { Target: string }[] }).Networks ?? [];
  expect(networks).toHaveLength(1);
  const overlay = (await manager.getNetwork(networks[0]?.Target ?? '').inspect()) as { Name: string; Internal: boolean; Containers?: Record<string, { Name: string }> };
  expect(overlay.Internal).toBe(true);
  // (What the manager's engine sees of it: the manager's own task, and the overlay's load-balancer endpoint, lb-<network>.)
  const others = Object.entries(overlay.Containers ?? {}).filter(([id, c]) => !id.startsWith('lb-') && !c.Name.startsWith('clawloops-node-stats-'));
  expect(others.map(([, c]) => c.Name)).toEqual(['clawloops-control-plane']);

  // A runtime on a worker cannot open a connection to the node-stats task beside it.
  const tasks = (await manager.listTasks({ filters: JSON.stringify({ service: [service.ID], 'desired-state': ['running'] }) })) as { NodeID: string; NetworksAttachments?: { Addresses?: string[] }[] }[];
  const { runtimeId, node } = await memberOnAWorker();
  const statsTask = tasks.find((t) => t.NodeID === nodeIds.get(node));
  const address = statsTask?.NetworksAttachments?.[0]?.Addresses?.[0]?.split('/')[0];
  expect(address).toBeDefined();
  const engine = await nodeEngine(node);
  const probe = "const s = require('net').connect(7071, process.argv[1]); s.on('connect', () => { console.log('connected'); process.exit(0); }); s.on('error', (e) => { console.log(e.code); process.exit(0); }); setTimeout(() => { console.log('timeout'); process.exit(0); }, 3000);";
  const tried = await execIn(await runtimeContainer(engine, runtimeId), ['/usr/local/bin/node', '-e', probe, address ?? ''], '1000:1000', engine);
  expect(tried.stdout.trim()).not.toBe('connected');
  process.stdout.write(`a runtime on ${node} connecting to the node-stats server there (${address}:7071): ${tried.stdout.trim()}\n`);
});


let onWorker: { name: string; agent: TestAgent; runtime: RuntimeView; node: string };

it('reads and writes the files of a runtime on a worker, where its volume is', async () => {
  for (const [name, agent] of members) {
    const runtime = await runtimeOf(agent);
    const node = await nodeOfRuntime(runtime.id);
    if (node !== 'clawloops-swarmlab-1') onWorker = { name, agent, runtime, node };
  }
  const { agent, runtime, node } = onWorker;
  const up = await agent.post('/api/v1/files/upload').attach('files', Buffer.from('made on a worker\n'), { filename: 'worker.txt' });
  expect(up.status).toBe(201);
  const down = await agent.get('/api/v1/files/download?path=worker.txt').buffer(true);
  expect(down.status).toBe(200);
  expect(String(down.text ?? down.body)).toBe('made on a worker\n');
  // The node itself holds the volume and the runtime's container sees the file.
  const engine = await nodeEngine(node);
  const volumes = (await engine.listVolumes()).Volumes?.map((v) => v.Name) ?? [];
  expect(volumes).toContain(`clawloops-home-${runtime.id}`);
  expect(((await manager.listVolumes()).Volumes ?? []).map((v) => v.Name)).not.toContain(`clawloops-home-${runtime.id}`);
  const [container] = await engine.listContainers({ filters: JSON.stringify({ label: ['io.clawloops.role=runtime', `io.clawloops.runtime-id=${runtime.id}`] }) });
  expect(container).toBeDefined();
});

it('reports a runtime on a drained node with the reason, and runs it again when the node is back', async () => {
  const { agent, node } = onWorker;
  await setAvailability(node, 'drain');
  const drainedAt = Date.now();
  const drained = await until(agent, 'the runtime to say its node is drained', (v) => v.state !== 'running' && (v.stateReason ?? '').includes('drain'), 60_000);
  expect(drained.stateReason).toContain(node);
  process.stdout.write(`node ${node} drained: its runtime reported unavailable after ${((Date.now() - drainedAt) / 1000).toFixed(1)} s\n`);
  await setAvailability(node, 'active');
  await until(agent, 'the runtime running again', (v) => v.state === 'running');
});

it('moves a stopped runtime to another worker with its files, and removes the old copy', async () => {
  const { agent, runtime, node } = onWorker;
  const target = node === 'clawloops-swarmlab-2' ? 'clawloops-swarmlab-3' : 'clawloops-swarmlab-2';
  const userId = runtime.userId;
  const moved = await admin.post(`/api/v1/admin/users/${userId}/runtime/move`).send({ node: target });
  expect(moved.status).toBe(202);
  expect(moved.body.operation).toMatchObject({ kind: 'move' });
  // Done once it is audited, with where it went (the old copy is removed before that).
  const audited = await eventually(
    async () => {
      const audit = (await admin.get('/api/v1/admin/audit?action=runtime.moved')).body as { items: { detail: { from: string; to: string; bytes: number | null } }[] };
      return audit.items[0];
    },
    'the move to finish',
    180_000,
    1_000,
  );
  expect(audited.detail).toMatchObject({ from: node, to: target });
  expect(audited.detail.bytes).toBeGreaterThan(0);
  expect(await nodeOfRuntime(runtime.id)).toBe(target);
  expect([200, 202]).toContain((await agent.post('/api/v1/runtime/start')).status);
  await until(agent, 'the moved runtime running', (v) => v.state === 'running');
  const down = await agent.get('/api/v1/files/download?path=worker.txt').buffer(true);
  expect(String(down.text ?? down.body)).toBe('made on a worker\n');
  const [container] = await (await nodeEngine(target)).listContainers({ filters: JSON.stringify({ label: ['io.clawloops.role=runtime', `io.clawloops.runtime-id=${runtime.id}`] }) });
  expect(container).toBeDefined();
  // The old node keeps no copy of the data: the volume is gone, or emptied (a manager cannot remove a worker's volume).
  const oldEngine = await nodeEngine(node);
  const leftover = ((await oldEngine.listVolumes()).Volumes ?? []).find((v) => v.Name === `clawloops-home-${runtime.id}`);
  if (leftover) expect(await entriesIn(oldEngine, leftover.Name)).toBe(0);
  onWorker = { ...onWorker, node: target };
});

it('reports a runtime whose node stopped within seconds, and moves it without its data on request', async () => {
  const { agent, runtime, node } = onWorker;
  await docker.getContainer(node).stop({ t: 1 });
  const stoppedAt = Date.now();
  const lost = await until(agent, 'the runtime to say its node is down', (v) => (v.stateReason ?? '').includes('down'), 60_000);
  process.stdout.write(`node ${node} stopped: its runtime reported unavailable after ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s (swarm's heartbeat timeout is most of it)\n`);
  expect(lost.stateReason).toContain(node);
  // Its data cannot be copied from a node that is down: refused at once, nothing stopped for it.
  const withData = await admin.post(`/api/v1/admin/users/${runtime.userId}/runtime/move`).send({ node: 'clawloops-swarmlab-1' });
  expect(withData.status).toBe(409);
  expect(withData.body.error.code).toBe('SOURCE_NODE_DOWN');
  const without = await admin.post(`/api/v1/admin/users/${runtime.userId}/runtime/move`).send({ node: 'clawloops-swarmlab-1', copy: false });
  expect(without.status).toBe(202);
  await eventually(
    async () => ((await admin.get('/api/v1/admin/audit?action=runtime.moved')).body as { items: { detail: { to: string } }[] }).items.find((i) => i.detail.to === 'clawloops-swarmlab-1'),
    'the move without data',
    180_000,
    1_000,
  );
  expect(await nodeOfRuntime(runtime.id)).toBe('clawloops-swarmlab-1');
  expect([200, 202]).toContain((await agent.post('/api/v1/runtime/start')).status);
  await until(agent, 'the runtime running on the manager', (v) => v.state === 'running');
  await docker.getContainer(node).start();
});
