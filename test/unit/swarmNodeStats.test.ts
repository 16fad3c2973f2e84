import fs from 'node:fs';
import type http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { filesKeyFrom } from '../../src/files/agent/requestSigning';
import { createLogger } from '../../src/lib/logger';
import { SettingsStore } from '../../src/lib/settingsStore';
import { createNodeStatsServer } from '../../src/swarm/nodeStats/server';
import type { OverlayInfo, ServiceSnapshot, SwarmEngine, TaskSnapshot } from '../../src/swarm/swarmEngine';
import { SwarmNodeStats } from '../../src/swarm/swarmNodeStats';
import { freePort } from '../support/processes';

/**
 * The control plane's side of the node-stats service (src/swarm/swarmNodeStats.ts) against a
 * fake swarm whose "task" is a real node-stats server on this machine: the service is made once
 * for many reads, with its hardening, its key as a secret and its own overlay; requests are signed
 * with that key; it goes when idle, at shutdown, and a leftover goes at start-up.
 */

const ID = 'e'.repeat(64);
const OVERLAY = 'test-node-stats';

class FakeSwarm {
  readonly services = new Map<string, { spec: Record<string, unknown>; labels: Record<string, string> }>();
  readonly secrets = new Map<string, { data: Buffer; labels: Record<string, string> }>();
  readonly joined: OverlayInfo[] = [];
  server: http.Server | null = null;
  taskState: TaskSnapshot['state'] = 'running';
  private next = 0;

  constructor(
    readonly port: number,
    private readonly cgroupRoot: string,
  ) {}

  stamp(labels: Record<string, string>): Record<string, string> {
    return { ...labels, 'io.clawloops.managed': 'true', 'io.clawloops.instance': 'test' };
  }

  async ensureOverlay(name: string, labels: Record<string, string>): Promise<OverlayInfo> {
    return { id: 'overlay-id', name, subnet: '10.213.7.0/24', labels: this.stamp(labels) };
  }

  async createSecret(_name: string, data: Buffer, labels: Record<string, string>): Promise<string> {
    const id = `secret-${++this.next}`;
    this.secrets.set(id, { data, labels: this.stamp(labels) });
    return id;
  }

  async removeSecret(id: string): Promise<void> {
    this.secrets.delete(id);
  }

  async listSecrets() {
    return [...this.secrets].map(([id, s]) => ({ id, name: id, labels: s.labels }));
  }

  async createService(spec: Record<string, unknown>): Promise<string> {
    const id = `service-${++this.next}`;
    this.services.set(id, { spec, labels: (spec.Labels as Record<string, string>) ?? {} });
    // Its task on node n1: a node-stats server with the key the secret holds.
    const secretId = ((spec.TaskTemplate as { ContainerSpec: { Secrets: { SecretID: string }[] } }).ContainerSpec.Secrets[0] as { SecretID: string }).SecretID;
    const key = filesKeyFrom(this.secrets.get(secretId)?.data ?? '');
    await this.stopServer();
    this.server = createNodeStatsServer({ cgroupRoot: this.cgroupRoot, key, nodeMemoryBytes: 1024 ** 3, log: () => undefined });
    await new Promise<void>((resolve) => this.server?.listen(this.port, '127.0.0.1', resolve));
    return id;
  }

  async removeService(id: string): Promise<void> {
    this.services.delete(id);
  }

  async inspectService(id: string): Promise<ServiceSnapshot | null> {
    return this.services.has(id) ? ({ id } as ServiceSnapshot) : null;
  }

  async listServices(): Promise<{ id: string; labels: Record<string, string> }[]> {
    return [...this.services].map(([id, s]) => ({ id, labels: s.labels }));
  }

  async listTasks(serviceIds?: string[]): Promise<TaskSnapshot[]> {
    // As the engine answers for a service that is gone.
    if (serviceIds?.some((id) => !this.services.has(id))) throw Object.assign(new Error('service not found'), { statusCode: 404 });
    return [...this.services.keys()]
      .filter((id) => !serviceIds || serviceIds.includes(id))
      .map((serviceId) => ({ id: `task-${serviceId}`, serviceId, nodeId: 'n1', state: this.taskState, desiredState: 'running', message: '', error: this.taskState === 'rejected' ? 'No such image: runtime:1' : null, exitCode: null, containerId: 'f'.repeat(64), createdAt: 0, stateSince: 0, addresses: { [OVERLAY]: '127.0.0.1' }, labels: {} }));
  }

  async stopServer(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server) await new Promise((resolve) => server.close(resolve));
  }
}

let root: string;
let swarm: FakeSwarm;

beforeEach(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'node-stats-client-'));
  for (const [file, content] of Object.entries({
    'cgroup.controllers': 'memory cpu\n',
    [`docker/${ID}/memory.current`]: '3000\n',
    [`docker/${ID}/memory.stat`]: 'inactive_file 1000\n',
    [`docker/${ID}/memory.max`]: '4096\n',
    [`docker/${ID}/cpu.stat`]: 'usage_usec 5\n',
  })) {
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), content);
  }
  swarm = new FakeSwarm(await freePort(), root);
});

afterEach(async () => {
  await swarm.stopServer();
  fs.rmSync(root, { recursive: true, force: true });
});

function nodeStats(idleMs = 60_000): SwarmNodeStats {
  return new SwarmNodeStats({
    engine: swarm as unknown as SwarmEngine,
    overlayName: OVERLAY,
    join: async (overlay) => void swarm.joined.push(overlay),
    settings: new SettingsStore({ image: 'runtime:1' }),
    serverScript: async () => '/* the bundle */',
    logger: createLogger('silent'),
    idleMs,
    port: swarm.port,
  });
}

test('made once for many reads: a hardened global service on its own overlay, which the control plane joins', async () => {
  const stats = nodeStats();
  const answers = await Promise.all(Array.from({ length: 5 }, () => stats.read('n1', [ID], [])));
  for (const answer of answers) expect(answer.containers[ID]).toMatchObject({ memoryBytes: 2000, memoryLimitBytes: 4096, cpuNs: 5000 });
  expect(swarm.services.size).toBe(1);
  expect(swarm.secrets.size).toBe(1);
  expect(swarm.joined.map((o) => o.name)).toEqual([OVERLAY]);
  const [service] = [...swarm.services.values()];
  expect(service?.spec).toMatchObject({
    Mode: { Global: {} },
    Labels: { 'io.clawloops.role': 'node-stats', 'io.clawloops.instance': 'test' },
    TaskTemplate: {
      ContainerSpec: {
        Image: 'runtime:1',
        User: '1000:1000',
        CapabilityDrop: ['ALL'],
        ReadOnly: true,
        Mounts: [{ Type: 'bind', Source: '/sys/fs/cgroup', Target: '/host/cgroup', ReadOnly: true }],
        Command: ['/usr/bin/setpriv', '--no-new-privs', '--', 'node', '-e', '/* the bundle */'],
      },
      Resources: { Limits: { MemoryBytes: 128 * 1024 ** 2, Pids: 32 } },
      Networks: [{ Target: OVERLAY }],
    },
  });
  // The key is in the secret only, never in the spec.
  const key = [...swarm.secrets.values()][0]?.data.toString() ?? '';
  expect(key).toMatch(/^[0-9a-f]{64}$/);
  expect(JSON.stringify(service?.spec)).not.toContain(key);
  await stats.close();
});

test('goes when idle, and comes back with a new key at the next read', async () => {
  const stats = nodeStats(50);
  await stats.read('n1', [ID], []);
  const firstKey = [...swarm.secrets.values()][0]?.data.toString();
  await new Promise((resolve) => setTimeout(resolve, 300));
  expect(swarm.services.size).toBe(0);
  expect(swarm.secrets.size).toBe(0);
  expect((await stats.read('n1', [ID], [])).containers[ID]).not.toBeNull();
  expect([...swarm.secrets.values()][0]?.data.toString()).not.toBe(firstKey);
  await stats.close();
  expect(swarm.services.size).toBe(0);
  expect(swarm.secrets.size).toBe(0);
});

test("a leftover of an earlier process goes at start-up; the sweep leaves this process's own alone", async () => {
  await swarm.createSecret('old', Buffer.from('a'.repeat(64)), { 'io.clawloops.role': 'node-stats' });
  swarm.services.set('old-service', { spec: {}, labels: swarm.stamp({ 'io.clawloops.role': 'node-stats' }) });
  const stats = nodeStats();
  await stats.sweep();
  expect(swarm.services.size).toBe(0);
  expect(swarm.secrets.size).toBe(0);
  await stats.read('n1', [ID], []);
  await stats.sweep();
  expect(swarm.services.size).toBe(1);
  await stats.close();
  expect(swarm.services.size).toBe(0);
});

test('removed behind its back, it fails that read and is made again for the next', async () => {
  const stats = nodeStats();
  await stats.read('n1', [ID], []);
  swarm.services.clear();
  await expect(stats.read('n1', [ID], [])).rejects.toThrow('the node-stats service is gone');
  expect((await stats.read('n1', [ID], [])).containers[ID]).toMatchObject({ memoryBytes: 2000 });
  expect(swarm.services.size).toBe(1);
  await stats.close();
});

test('a node where its task cannot run is said so, with the reason', async () => {
  swarm.taskState = 'rejected';
  const stats = nodeStats();
  await expect(stats.read('n1', [ID], [])).rejects.toThrow('the node-stats service does not run on node n1 (rejected: No such image: runtime:1)');
  await stats.close();
});
