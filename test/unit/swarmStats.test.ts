import type { Installation } from '../../src/domain/installation';
import type { RuntimeBackend } from '../../src/docker/runtimeBackend';
import { createLogger } from '../../src/lib/logger';
import type { NodeReading, NodeStatsAnswer } from '../../src/swarm/nodeStats/protocol';
import type { NodeStatsSource } from '../../src/swarm/swarmFigures';
import type { SwarmFileAgents } from '../../src/swarm/swarmFileAgents';
import { SwarmEngine, taskOf, type TaskSnapshot } from '../../src/swarm/swarmEngine';
import { SwarmRuntimeProvisioner } from '../../src/swarm/swarmRuntimeProvisioner';

/**
 * `stats` of the swarm provisioner, as the admin's runtime list samples it: the figures of a
 * runtime come from the node-stats server of whichever node its task runs on (the manager's own
 * included; its engine is never asked), and a node is asked only about this installation's
 * runtimes. The engine is a fake that answers the task listing in the API's own shape.
 */

const cid = (n: number) => n.toString(16).padStart(64, '0');
const OURS = { 'io.clawloops.managed': 'true', 'io.clawloops.instance': 'prod' };

/** A task as the swarm's API lists it. */
function rawTask(serviceId: string, node: string, container: number, labels: Record<string, string>, state = 'running') {
  return {
    ID: `task-${serviceId}`,
    ServiceID: serviceId,
    NodeID: node,
    DesiredState: 'running',
    CreatedAt: '2026-12-07T10:00:00Z',
    Spec: { ContainerSpec: { Image: 'runtime:1', Labels: labels } },
    Status: { State: state, Timestamp: '2026-12-07T10:00:01Z', ContainerStatus: { ContainerID: cid(container) } },
  };
}

function setup() {
  const raw = [
    rawTask('on-manager', 'manager', 1, { ...OURS, 'io.clawloops.role': 'runtime' }),
    rawTask('on-worker', 'worker-1', 2, { ...OURS, 'io.clawloops.role': 'runtime' }),
    rawTask('agent', 'worker-1', 3, { ...OURS, 'io.clawloops.role': 'files' }),
    rawTask('their-runtime', 'worker-1', 4, { 'io.clawloops.managed': 'true', 'io.clawloops.instance': 'staging', 'io.clawloops.role': 'runtime' }),
    rawTask('stopped', 'worker-1', 5, { ...OURS, 'io.clawloops.role': 'runtime' }, 'shutdown'),
  ];
  let listings = 0;
  const docker = { listTasks: async () => (listings++, raw) };
  const engine = new SwarmEngine(docker as never, 'prod');
  const asked: { node: string; containers: string[] }[] = [];
  let nowUs = 1_000_000;
  const source: NodeStatsSource = {
    async read(node: string, containers: string[], tasks: TaskSnapshot[]): Promise<NodeStatsAnswer> {
      expect(tasks.map((t) => t.serviceId)).toContain('on-worker');
      asked.push({ node, containers });
      nowUs += 1_000_000;
      const readings: Record<string, NodeReading> = {};
      for (const id of containers) readings[id] = { memoryBytes: parseInt(id, 16) * 1024 ** 2, memoryLimitBytes: 256 * 1024 ** 2, cpuNs: nowUs * 250, atUs: nowUs };
      return { clock: node, containers: readings };
    },
  };
  const local = {
    stats: () => {
      throw new Error('the local engine is not asked');
    },
  } as unknown as RuntimeBackend;
  const provisioner = new SwarmRuntimeProvisioner(
    engine,
    local,
    {} as SwarmFileAgents,
    {
      routing: { addressing: { mode: 'path' }, traefik: null, router: 'builtin' } as never,
      router: 'builtin',
      controlPlaneContainer: 'self',
      sharedVolumeOptions: null,
      memoryReservationShare: 0.5,
      pollMs: 1_000,
      idlePollMs: 5_000,
      runtimeMemoryBytes: () => 256 * 1024 ** 2,
    },
    createLogger('silent'),
    { id: 'installation-1', instance: 'prod' } as Installation,
    source,
  );
  return { provisioner, asked, listings: () => listings };
}

test('a runtime on a worker has figures from its node, with CPU from two readings', async () => {
  const t = setup();
  const stats = await t.provisioner.stats('on-worker');
  // 250 ns of CPU time per µs: a quarter of a CPU.
  expect(stats).toEqual({ memoryBytes: 2 * 1024 ** 2, memoryLimitBytes: 256 * 1024 ** 2, cpuPercent: 25 });
  // Only this installation's running runtimes on that node: not the file agent, not another installation's runtime.
  expect(t.asked.map((a) => a.node)).toEqual(['worker-1', 'worker-1']);
  expect(t.asked[0]?.containers).toEqual([cid(2)]);
}, 10_000);

test("the manager's runtimes go the same way, and a round shares one listing", async () => {
  const t = setup();
  const [manager, worker, stopped] = await Promise.all([t.provisioner.stats('on-manager'), t.provisioner.stats('on-worker'), t.provisioner.stats('stopped')]);
  expect(manager).toMatchObject({ memoryBytes: 1024 ** 2, cpuPercent: 25 });
  expect(worker).toMatchObject({ memoryBytes: 2 * 1024 ** 2 });
  expect(stopped).toBeNull();
  expect(t.listings()).toBe(1);
  expect(new Set(t.asked.map((a) => a.node))).toEqual(new Set(['manager', 'worker-1']));
}, 10_000);

test('the listing reads the labels of each task container', () => {
  expect(taskOf(rawTask('x', 'n', 7, { a: 'b' })).labels).toEqual({ a: 'b' });
  expect(taskOf({ ID: 't' }).labels).toEqual({});
});
