/**
 * How a swarm service and its tasks read back as a runtime (src/swarm/runtimeService.ts), where
 * new runtimes go (placement.ts), and how configuration entries are re-rooted into the volume
 * for the file agent (intoVolume): the decisions the engine tests only see one case of each.
 */
import type Docker from 'dockerode';
import { Placement } from '../../src/swarm/placement';
import { ANY_NODE, changeBetween, digestOf, instanceOfService, isSettled, NODE_LABEL, phaseOf, serviceSpecFor, swarmTraefikLabels } from '../../src/swarm/runtimeService';
import type { NodeSnapshot, ServiceSnapshot, SwarmEngine, TaskSnapshot } from '../../src/swarm/swarmEngine';
import { intoVolume } from '../../src/swarm/swarmRuntimeProvisioner';
import type { RuntimeSpec } from '../../src/runtime/provisioner';

const owner = { runtimeId: 'rt-1234567890', userId: 'user-1', username: 'alice' };
const labels = { 'io.clawloops.role': 'runtime', 'io.clawloops.runtime-id': owner.runtimeId, 'io.clawloops.user-id': owner.userId, 'io.clawloops.username': owner.username, [NODE_LABEL]: 'node-a' };

function service(replicas: number, extra: Partial<ServiceSnapshot> = {}): ServiceSnapshot {
  return { id: 'svc1', name: 'clawloops-alice-rt-12345', version: 3, labels, image: 'img:1', replicas, createdAt: 1, updatedAt: 5, memoryLimitBytes: 256 * 1024 ** 2, nanoCpus: 0, constraints: [], spec: {} as Docker.ServiceSpec, ...extra };
}

function task(state: TaskSnapshot['state'], extra: Partial<TaskSnapshot> = {}): TaskSnapshot {
  return { id: `t-${state}`, serviceId: 'svc1', nodeId: 'node-a', state, desiredState: 'running', message: '', error: null, exitCode: null, containerId: 'c1', createdAt: 10, stateSince: 20, addresses: { [`clawloops-net-${owner.runtimeId}`]: '10.213.0.130' }, labels: {}, ...extra };
}

const fine = { reason: null, lost: false };

describe('a service and its tasks as a runtime phase', () => {
  test.each([
    ['no task, replicas 0', 0, [], 'created'],
    ['no task yet, replicas 1', 1, [], 'starting'],
    ['scheduled, waiting for its node', 1, [task('pending', { error: 'no suitable node (insufficient resources on 3 nodes)' })], 'starting'],
    ['started, before its first health check', 1, [task('starting')], 'starting'],
    ['running', 1, [task('running')], 'running'],
    ['stopped by us', 0, [task('shutdown', { exitCode: 0, desiredState: 'shutdown' })], 'exited'],
    ['failed, the swarm restarts it', 1, [task('failed', { exitCode: 1, error: 'task: non-zero exit (1)' })], 'restarting'],
    ['its image is missing on the node', 1, [task('rejected', { error: 'No such image: img:1' })], 'crashed'],
  ] as const)('%s', (_name, replicas, tasks, phase) => {
    expect(phaseOf(service(replicas), [...tasks]).phase).toBe(phase);
  });

  test('a second task since the last start is the swarm replacing the first: down until it runs', () => {
    const replaced = phaseOf(service(1), [task('pending', { id: 't2', createdAt: 12, message: 'no suitable node (1 node not available for new tasks)' }), task('shutdown', { createdAt: 10 })]);
    expect(replaced.phase).toBe('restarting');
    // A start after our own stop: the earlier task belongs to the run before it.
    expect(phaseOf(service(1), [task('pending', { id: 't2', createdAt: 12 }), task('shutdown', { createdAt: 3 })]).phase).toBe('starting');
  });

  test('the scheduler says why a task waits', () => {
    expect(phaseOf(service(1), [task('pending', { error: 'no suitable node (insufficient resources on 3 nodes)' })]).reason).toBe('no suitable node (insufficient resources on 3 nodes)');
  });

  test('a running task has the address the proxies reach it at; one lost with its node has none', () => {
    expect(instanceOfService(service(1), [task('running')], 18789, fine)).toMatchObject({ phase: 'running', url: 'http://10.213.0.130:18789', specHash: null, owner });
    const lost = instanceOfService(service(1), [task('running')], 18789, { reason: 'Its node n1 is down (heartbeat failure)', lost: true });
    expect(lost).toMatchObject({ phase: 'crashed', url: null, reason: 'Its node n1 is down (heartbeat failure)' });
  });
});

describe('when the watch may rest (read every idle poll, woken by service and node events)', () => {
  test.each([
    ['running, nothing else up', 1, [task('running')], fine, true],
    ['stopped, nothing up', 0, [task('shutdown', { desiredState: 'shutdown', exitCode: 0 })], fine, true],
    ['never started', 0, [], fine, true],
    ['held by a drained node', 1, [task('pending')], { reason: 'Its node n2 is set to drain …', lost: false }, true],
    ['lost with a node that is down', 1, [task('running')], { reason: 'Its node n2 is down', lost: true }, true],
    ['starting', 1, [task('starting')], fine, false],
    ['no task yet', 1, [], fine, false],
    ['stopping: its task still runs', 0, [task('running', { desiredState: 'shutdown' })], fine, false],
    ['replaced: the new task runs, the old one is still going down', 1, [task('running', { id: 't2', createdAt: 12 }), task('running', { desiredState: 'shutdown' })], fine, false],
    ['failed, the swarm restarts it', 1, [task('failed', { exitCode: 1 })], fine, false],
  ] as const)('%s: %s', (_name, replicas, tasks, verdict, settled) => {
    expect(isSettled(service(replicas), [...tasks], verdict)).toBe(settled);
  });
});

describe('changes between two looks', () => {
  const runningDigest = digestOf(service(1), [task('running')], fine);
  test('a task that reached running has started; one that left it has exited', () => {
    expect(changeBetween(owner.runtimeId, 'svc1', digestOf(service(1), [task('starting')], fine), runningDigest, null)?.kind).toBe('started');
    expect(changeBetween(owner.runtimeId, 'svc1', runningDigest, digestOf(service(1), [task('failed', { exitCode: 3 })], fine), 3)).toMatchObject({ kind: 'exited', exitCode: 3 });
  });
  test('the same look twice is no change; a service gone is removed; a node going down is an exit', () => {
    expect(changeBetween(owner.runtimeId, 'svc1', runningDigest, runningDigest, null)).toBeNull();
    expect(changeBetween(owner.runtimeId, 'svc1', runningDigest, null, null)?.kind).toBe('removed');
    expect(changeBetween(owner.runtimeId, 'svc1', runningDigest, digestOf(service(1), [task('running')], { reason: 'down', lost: true }), null)?.kind).toBe('exited');
  });
});

describe('the service a runtime becomes', () => {
  const spec: RuntimeSpec = {
    owner,
    image: 'img:1',
    command: ['node', 'dist/index.js'],
    workingDir: '/app',
    env: { A: '1' },
    secretEnv: { KEY: 's' },
    uid: 1000,
    dataPath: '/home/node/.openclaw',
    port: 18789,
    readinessPath: '/readyz',
    limits: { memoryBytes: 2 * 1024 ** 3, nanoCpus: 2e9, pidsLimit: 512 },
    specHash: 'h1',
  };
  const routing = { addressing: { mode: 'host' as const, domain: 'example.test', platformOrigin: 'http://example.test' }, traefik: { entrypoint: 'web', certResolver: null, middleware: 'auth@docker', platformService: 'cp@docker' }, router: 'traefik' as const };
  const stamp = (l: Record<string, string>) => ({ ...l, 'io.clawloops.instance': 'i1' });

  test('hardened, limited, pinned, on its own overlay, under setpriv, with no replica until started', () => {
    const created = serviceSpecFor(spec, ['tini', '--', 'node', 'dist/index.js'], 'node-b', { routing, sharedVolumeOptions: null, memoryReservationShare: 0.25 }, stamp) as Docker.CreateServiceOptions & { TaskTemplate: Docker.ContainerTaskSpec };
    const container = created.TaskTemplate.ContainerSpec as Docker.ContainerSpec & { CapabilityDrop: string[]; Init: boolean };
    expect(container.Command).toEqual(['/usr/bin/setpriv', '--no-new-privs', '--', 'tini', '--', 'node', 'dist/index.js']);
    expect(container).toMatchObject({ User: '1000:1000', Init: true, CapabilityDrop: ['ALL'] });
    expect(container.Env).toEqual(['A=1', 'KEY=s']);
    expect(created.TaskTemplate.Resources).toEqual({ Limits: { MemoryBytes: 2 * 1024 ** 3, NanoCPUs: 2e9, Pids: 512 }, Reservations: { MemoryBytes: 512 * 1024 ** 2 } });
    expect(created.TaskTemplate.Placement?.Constraints).toEqual(['node.id==node-b']);
    expect(created.Mode).toEqual({ Replicated: { Replicas: 0 } });
    expect(created.EndpointSpec).toEqual({ Mode: 'dnsrr' });
    expect(created.Labels?.[NODE_LABEL]).toBe('node-b');
    expect(created.Labels?.['traefik.swarm.network']).toBe(`clawloops-net-${owner.runtimeId}`);
    expect(created.Labels?.['traefik.docker.network']).toBeUndefined();
    // Only service labels carry the routers: the Docker provider must not see the task containers.
    expect(Object.keys(container.Labels ?? {}).some((k) => k.startsWith('traefik.'))).toBe(false);
  });

  test('on shared storage: no node, the local driver with the volume named in its options', () => {
    const created = serviceSpecFor(spec, ['node'], ANY_NODE, { routing, sharedVolumeOptions: { type: 'nfs', device: ':/exports/{volume}' }, memoryReservationShare: 0.25 }, stamp) as Docker.CreateServiceOptions & { TaskTemplate: Docker.ContainerTaskSpec };
    expect(created.TaskTemplate.Placement?.Constraints).toEqual([]);
    const mount = (created.TaskTemplate.ContainerSpec?.Mounts ?? [])[0] as { VolumeOptions: { DriverConfig: { Name: string; Options: Record<string, string> } } };
    expect(mount.VolumeOptions.DriverConfig).toEqual({ Name: 'local', Options: { type: 'nfs', device: `:/exports/clawloops-home-${owner.runtimeId}` } });
  });

  test('path routing keeps its prefix rule under the swarm provider', () => {
    const rules = swarmTraefikLabels(owner, { ...routing, addressing: { ...routing.addressing, mode: 'path' } }, 18789);
    expect(Object.entries(rules).find(([k]) => k.endsWith('.rule'))?.[1]).toContain('PathPrefix');
  });
});

describe('placement of a new runtime', () => {
  const node = (id: string, memoryGiB: number, extra: Partial<NodeSnapshot> = {}): NodeSnapshot => ({ id, hostname: id, role: 'worker', availability: 'active', state: 'ready', message: '', address: '', memoryBytes: memoryGiB * 1024 ** 3, nanoCpus: 2e9, ...extra });
  const overlay = (runtimeId: string, pinned: string) => ({ id: runtimeId, name: `clawloops-net-${runtimeId}`, subnet: '10.213.0.0/27', labels: { 'io.clawloops.runtime-id': runtimeId, [NODE_LABEL]: pinned } });
  const engine = (nodes: NodeSnapshot[], services: ServiceSnapshot[] = [], overlays: ReturnType<typeof overlay>[] = []) =>
    ({ listNodes: async () => nodes, listServices: async () => services, listTasks: async () => [], listOverlays: async () => overlays }) as unknown as SwarmEngine;
  const settings = { sharedVolumeOptions: null, memoryReservationShare: 0.25, runtimeMemoryBytes: () => 2 * 1024 ** 3 };

  test('goes to the ready, active node with the most memory not set aside', async () => {
    const busy = service(1, { labels: { ...labels, [NODE_LABEL]: 'big' }, memoryLimitBytes: 24 * 1024 ** 3 });
    const placement = new Placement(engine([node('big', 16), node('small', 8), node('down', 64, { state: 'down' }), node('drained', 64, { availability: 'drain' })], [busy], [overlay(owner.runtimeId, 'big')]), settings);
    // big: 16 − 6 GiB set aside = 10 GiB free, small: 8.
    expect(await placement.chooseNode(false, 'manager')).toBe('big');
  });

  test('counts runtimes pinned to a node that have not started yet: accounts made together spread out', async () => {
    const placement = new Placement(engine([node('n1', 16), node('n2', 16), node('n3', 16)], [], [overlay('a', 'n1'), overlay('b', 'n2')]), settings);
    expect(await placement.chooseNode(false, 'manager')).toBe('n3');
  });
  test('stays where its volume already is, and pins nothing on shared storage', async () => {
    expect(await new Placement(engine([node('w1', 64)]), settings).chooseNode(true, 'manager')).toBe('manager');
    expect(await new Placement(engine([node('w1', 64)]), { ...settings, sharedVolumeOptions: { device: '{volume}' } }).chooseNode(false, 'manager')).toBe(ANY_NODE);
  });
  test('refuses when no node can take it', async () => {
    await expect(new Placement(engine([node('d', 8, { state: 'down' })]), settings).chooseNode(false, 'm')).rejects.toThrow(/no node of the swarm is ready and active/);
  });
});

describe('configuration entries into the volume', () => {
  const entry = (path: string, extra = {}) => ({ path, type: 'file' as const, mode: 0o600, uid: 1000, gid: 1000, content: Buffer.from('x'), ...extra });
  test('entries written above the mount point are re-rooted at the volume; the mount point itself is dropped', () => {
    const rooted = intoVolume('/home/node', [{ ...entry('.openclaw'), type: 'directory' }, entry('.openclaw/openclaw.json'), { ...entry('.openclaw/aside'), type: 'hardlink', linkTarget: '.openclaw/openclaw.json' }]);
    expect(rooted.map((e) => [e.path, e.linkTarget])).toEqual([
      ['openclaw.json', undefined],
      ['aside', 'openclaw.json'],
    ]);
  });
  test('anything outside the volume is refused', () => {
    expect(() => intoVolume('/home/node', [entry('.bashrc')])).toThrow(/outside the runtime's volume/);
    expect(() => intoVolume('/home/node/.openclaw', [entry('../../../etc/passwd')])).toThrow(/outside/);
  });
});
