import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { DockerLogLines } from '../docker/logLines';
import { engineReason, followEngineStream } from '../docker/dockerodeRuntimeBackend';
import { LABELS, MANAGED_LABEL } from '../docker/runtimeBackend';
import { DEFAULT_SUBNET_POOL, nextFreeSubnet, poolCapacity, upperHalf, type SubnetPool } from '../docker/subnetPool';

/**
 * The low-level adapter for a swarm manager's API (services, tasks, nodes, secrets, overlay
 * networks), in plain records. Only src/swarm/ builds on it. Everything it creates carries the
 * installation's instance label, and only what carries it is ever listed.
 */

/** Swarm's task states (moby/swarmkit api.TaskState), in their order of progress. */
export type TaskState =
  | 'new'
  | 'allocated'
  | 'pending'
  | 'assigned'
  | 'accepted'
  | 'preparing'
  | 'ready'
  | 'starting'
  | 'running'
  | 'complete'
  | 'shutdown'
  | 'failed'
  | 'rejected'
  | 'remove'
  | 'orphaned';

export interface TaskSnapshot {
  id: string;
  serviceId: string;
  nodeId: string | null;
  state: TaskState;
  desiredState: TaskState;
  /** Swarm's short account of the state ("started", "preparing", "no suitable node ..."). */
  message: string;
  /** What failed, when something did ("No such image: ...", "task: non-zero exit (1)"). */
  error: string | null;
  exitCode: number | null;
  containerId: string | null;
  createdAt: number | null;
  /** When the task reached its current state. */
  stateSince: number | null;
  /** The task's address on each network it is attached to, by network name. */
  addresses: Record<string, string>;
  /** Its container's labels (the service's ContainerSpec labels). */
  labels: Record<string, string>;
}

export interface ServiceSnapshot {
  id: string;
  name: string;
  /** The swarm's version of the spec: an update must name the one it read. */
  version: number;
  labels: Record<string, string>;
  image: string;
  replicas: number;
  createdAt: number | null;
  /** When its spec last changed (our start or stop among others). */
  updatedAt: number | null;
  memoryLimitBytes: number;
  nanoCpus: number;
  constraints: string[];
  spec: Docker.ServiceSpec;
}

export type NodeState = 'ready' | 'down' | 'disconnected' | 'unknown';

export interface NodeSnapshot {
  id: string;
  hostname: string;
  role: 'manager' | 'worker';
  availability: 'active' | 'pause' | 'drain';
  state: NodeState;
  /** The swarm's words about its state ("heartbeat failure"), when any. */
  message: string;
  address: string;
  memoryBytes: number;
  nanoCpus: number;
}

export interface OverlayInfo {
  id: string;
  name: string;
  subnet: string;
  labels: Record<string, string>;
}

export function statusCode(err: unknown): number | undefined {
  return typeof err === 'object' && err !== null && 'statusCode' in err ? Number((err as { statusCode: unknown }).statusCode) : undefined;
}

async function ignoreNotFound<T>(work: Promise<T>): Promise<T | null> {
  try {
    return await work;
  } catch (err) {
    if (statusCode(err) === 404) return null;
    throw err;
  }
}

function parseTime(value: unknown): number | null {
  if (typeof value !== 'string' || value.startsWith('0001-')) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : ms;
}

type Json = Record<string, unknown>;
const obj = (value: unknown): Json => (typeof value === 'object' && value !== null ? (value as Json) : {});
const str = (value: unknown): string => (typeof value === 'string' ? value : '');
const num = (value: unknown): number => (typeof value === 'number' && Number.isFinite(value) ? value : 0);
const labelsOf = (value: unknown): Record<string, string> => {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj(value))) if (typeof v === 'string') out[k] = v;
  return out;
};

export function taskOf(raw: unknown): TaskSnapshot {
  const task = obj(raw);
  const status = obj(task.Status);
  const container = obj(status.ContainerStatus);
  const addresses: Record<string, string> = {};
  for (const attachment of Array.isArray(task.NetworksAttachments) ? task.NetworksAttachments : []) {
    const a = obj(attachment);
    const name = str(obj(obj(a.Network).Spec).Name);
    const first = Array.isArray(a.Addresses) ? str(a.Addresses[0]) : '';
    if (name && first) addresses[name] = first.split('/')[0] ?? first;
  }
  const exit = container.ExitCode;
  return {
    id: str(task.ID),
    serviceId: str(task.ServiceID),
    nodeId: str(task.NodeID) || null,
    state: (str(status.State) || 'new') as TaskState,
    desiredState: (str(task.DesiredState) || 'running') as TaskState,
    message: str(status.Message),
    error: str(status.Err) || null,
    exitCode: typeof exit === 'number' && (str(status.State) === 'failed' || str(status.State) === 'complete' || str(status.State) === 'shutdown') ? exit : null,
    containerId: str(container.ContainerID) || null,
    createdAt: parseTime(task.CreatedAt),
    stateSince: parseTime(status.Timestamp),
    addresses,
    labels: labelsOf(obj(obj(task.Spec).ContainerSpec).Labels),
  };
}

function serviceOf(raw: unknown): ServiceSnapshot {
  const service = obj(raw);
  const spec = obj(service.Spec) as Docker.ServiceSpec & Json;
  const template = obj(spec.TaskTemplate);
  const limits = obj(obj(template.Resources).Limits);
  return {
    id: str(service.ID),
    name: str(spec.Name),
    version: num(obj(service.Version).Index),
    labels: labelsOf(spec.Labels),
    image: str(obj(template.ContainerSpec).Image).split('@')[0] ?? '',
    replicas: num(obj(obj(spec.Mode).Replicated).Replicas),
    createdAt: parseTime(service.CreatedAt),
    updatedAt: parseTime(service.UpdatedAt),
    memoryLimitBytes: num(limits.MemoryBytes),
    nanoCpus: num(limits.NanoCPUs),
    constraints: (Array.isArray(obj(template.Placement).Constraints) ? (obj(template.Placement).Constraints as unknown[]) : []).map(str),
    spec,
  };
}

function nodeOf(raw: unknown): NodeSnapshot {
  const node = obj(raw);
  const spec = obj(node.Spec);
  const description = obj(node.Description);
  const resources = obj(description.Resources);
  const status = obj(node.Status);
  return {
    id: str(node.ID),
    hostname: str(description.Hostname),
    role: str(spec.Role) === 'manager' ? 'manager' : 'worker',
    availability: (str(spec.Availability) || 'active') as NodeSnapshot['availability'],
    state: (str(status.State) || 'unknown') as NodeState,
    message: str(status.Message),
    address: str(status.Addr),
    memoryBytes: num(resources.MemoryBytes),
    nanoCpus: num(resources.NanoCPUs),
  };
}

export class SwarmEngine {
  private networkAllocation: Promise<void> = Promise.resolve();

  constructor(
    readonly docker: Docker,
    private readonly instance: string,
    private readonly subnetPool: SubnetPool = DEFAULT_SUBNET_POOL,
  ) {}

  stamp(labels: Record<string, string>): Record<string, string> {
    return { ...labels, [MANAGED_LABEL]: 'true', [LABELS.instance]: this.instance };
  }

  /** Whether something carries this installation's labels (stamp). */
  owns(labels: Record<string, string>): boolean {
    return labels[MANAGED_LABEL] === 'true' && labels[LABELS.instance] === this.instance;
  }

  private managedFilter(): string {
    return JSON.stringify({ label: [`${MANAGED_LABEL}=true`, `${LABELS.instance}=${this.instance}`] });
  }

  /** The local engine's place in the swarm: its node id, and whether it can manage the swarm. */
  async localNode(): Promise<{ nodeId: string; state: string; manager: boolean }> {
    const info = obj(await this.docker.info());
    const swarm = obj(info.Swarm);
    return { nodeId: str(swarm.NodeID), state: str(swarm.LocalNodeState), manager: swarm.ControlAvailable === true };
  }

  /**
   * Calls `onEvent` whenever a manager reports a service or node event (a service created,
   * updated or removed; a node's state or availability changed). Tasks have no events: their
   * changes are seen only by reading them. What happened is not passed on: the caller reads.
   */
  async subscribeSwarmEvents(onEvent: () => void, onEnd: (error: Error | null) => void): Promise<{ close(): void }> {
    const stream = (await this.docker.getEvents({ filters: { type: ['service', 'node'] } })) as Readable;
    return followEngineStream(stream, () => onEvent(), onEnd);
  }

  async listNodes(): Promise<NodeSnapshot[]> {
    return ((await this.docker.listNodes()) as unknown[]).map(nodeOf);
  }

  async createService(spec: Docker.CreateServiceOptions): Promise<string> {
    const service = await this.docker.createService(spec);
    return service.id;
  }

  async inspectService(id: string): Promise<ServiceSnapshot | null> {
    const raw = await ignoreNotFound(this.docker.getService(id).inspect() as Promise<unknown>);
    return raw ? serviceOf(raw) : null;
  }

  async listServices(): Promise<ServiceSnapshot[]> {
    return ((await this.docker.listServices({ filters: this.managedFilter() })) as unknown[]).map(serviceOf);
  }

  /**
   * Applies `change` to the service's current spec. The swarm refuses an update that names an
   * older version (someone else updated meanwhile): read again and retry.
   */
  async updateService(id: string, change: (spec: Docker.ServiceSpec) => Docker.ServiceSpec): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      const current = await this.inspectService(id);
      if (!current) throw Object.assign(new Error(`no such service: ${id}`), { statusCode: 404 });
      try {
        await this.docker.getService(id).update({ ...change(structuredClone(current.spec)), version: current.version });
        return;
      } catch (err) {
        if (attempt < 4 && /update out of sequence/i.test(engineReason(err))) continue;
        throw err;
      }
    }
  }

  async removeService(id: string): Promise<void> {
    await ignoreNotFound(this.docker.getService(id).remove());
  }

  /** Tasks of the given services (all of this installation's when omitted), newest first. */
  async listTasks(serviceIds?: string[]): Promise<TaskSnapshot[]> {
    if (serviceIds && serviceIds.length === 0) return [];
    const filters = serviceIds ? JSON.stringify({ service: serviceIds }) : undefined;
    const tasks = ((await this.docker.listTasks(filters ? { filters } : {})) as unknown[]).map(taskOf);
    return tasks.sort((a, b) => (b.createdAt ?? 0) - (a.createdAt ?? 0));
  }

  /**
   * An attachable internal overlay with a subnet from our pool: no route out of it, the lower
   * half of it kept free for the proxies' fixed addresses (docker/networkPlan.ts).
   */
  async ensureOverlay(name: string, labels: Record<string, string>): Promise<OverlayInfo> {
    const existing = await this.inspectOverlay(name);
    if (existing) return existing;
    await this.removeLeftoverBridge(name);
    const allocation = this.networkAllocation.then(() => this.createOverlay(name, labels));
    this.networkAllocation = allocation.then(
      () => undefined,
      () => undefined,
    );
    return allocation;
  }

  /** The runtime's overlay; null when there is none (a single-host bridge of the same name is not one). */
  async inspectOverlay(name: string): Promise<OverlayInfo | null> {
    const info = await ignoreNotFound(this.docker.getNetwork(name).inspect() as Promise<Docker.NetworkInspectInfo>);
    if (!info || info.Driver !== 'overlay') return null;
    return { id: info.Id, name: info.Name, subnet: info.IPAM?.Config?.[0]?.Subnet ?? '', labels: info.Labels ?? {} };
  }

  /**
   * A runtime network the single-host backend left on this node (a bridge of the same name) is in
   * the overlay's way. Its runtime container must be gone first: one still attached to it is a
   * runtime of the single-host backend that still runs, and the engine refuses to remove it.
   */
  private async removeLeftoverBridge(name: string): Promise<void> {
    const network = this.docker.getNetwork(name);
    const info = await ignoreNotFound(network.inspect() as Promise<Docker.NetworkInspectInfo>);
    if (!info || info.Driver === 'overlay') return;
    const attached = Object.values(info.Containers ?? {}).map((c) => c.Name);
    const runtimes = attached.filter((n) => !/control-plane|traefik|clawloops-cp-/.test(n ?? ''));
    if (runtimes.length > 0) {
      throw Object.assign(new Error(`the single-host network ${name} still has ${runtimes.join(', ')} attached: stop every runtime before switching to the swarm backend (docs/swarm.md)`), { statusCode: 409 });
    }
    for (const containerId of Object.keys(info.Containers ?? {})) await ignoreNotFound(network.disconnect({ Container: containerId, Force: true }));
    await ignoreNotFound(network.remove());
  }

  /** The runtimes' overlays: this installation's overlays that carry a runtime id (not the node-stats service's). */
  async listOverlays(): Promise<OverlayInfo[]> {
    const networks = await this.docker.listNetworks({ filters: this.managedFilter() });
    return networks.filter((n) => n.Driver === 'overlay' && n.Labels?.[LABELS.runtimeId]).map((n) => ({ id: n.Id, name: n.Name, subnet: n.IPAM?.Config?.[0]?.Subnet ?? '', labels: n.Labels ?? {} }));
  }

  private async createOverlay(name: string, labels: Record<string, string>): Promise<OverlayInfo> {
    const raced = await this.inspectOverlay(name);
    if (raced) return raced;
    const used = (await this.docker.listNetworks()).flatMap((n) => (n.IPAM?.Config ?? []).map((c) => c.Subnet ?? '')).filter(Boolean);
    for (let attempt = 0; attempt < 5; attempt++) {
      const free = nextFreeSubnet(this.subnetPool, used);
      if (!free) {
        throw new Error(`no free /${this.subnetPool.prefix} subnet left in ${this.subnetPool.base} (${poolCapacity(this.subnetPool)} runtime networks fit): widen CLAWLOOPS_RUNTIME_SUBNET_POOL`);
      }
      try {
        const network = await this.docker.createNetwork({
          Name: name,
          Driver: 'overlay',
          Attachable: true,
          Internal: true,
          Labels: this.stamp(labels),
          CheckDuplicate: true,
          IPAM: { Driver: 'default', Config: [{ Subnet: free.subnet, Gateway: free.gateway, IPRange: upperHalf(free.subnet) }] },
        });
        return { id: network.id, name, subnet: free.subnet, labels: this.stamp(labels) };
      } catch (err) {
        if (statusCode(err) === 409) {
          const winner = await this.inspectOverlay(name);
          if (winner) return winner;
        }
        if (!/overlap/i.test(engineReason(err))) throw err;
        used.push(free.subnet);
      }
    }
    throw new Error(`could not claim a free subnet in ${this.subnetPool.base}: other networks kept taking them`);
  }

  /**
   * Removes an overlay once nothing uses it: the swarm refuses while a task's container still
   * holds it (a removed service's task takes a moment to go), so this waits for that, bounded.
   */
  async removeOverlay(name: string, waitMs = 30_000): Promise<void> {
    const network = this.docker.getNetwork(name);
    const deadline = Date.now() + waitMs;
    for (;;) {
      const info = await ignoreNotFound(network.inspect() as Promise<Docker.NetworkInspectInfo>);
      if (!info) return;
      // Our proxies joined it as plain containers on this node: they are ours to detach.
      for (const containerId of Object.keys(info.Containers ?? {})) {
        if (containerId.startsWith('lb-')) continue;
        await ignoreNotFound(network.disconnect({ Container: containerId, Force: true })).catch(() => undefined);
      }
      try {
        await ignoreNotFound(network.remove());
        return;
      } catch (err) {
        if (Date.now() > deadline || !/in use|active endpoints/i.test(engineReason(err))) throw err;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
  }

  /** A swarm secret (immutable); resolves with its id. */
  async createSecret(name: string, data: Buffer, labels: Record<string, string>): Promise<string> {
    const secret = (await this.docker.createSecret({ Name: name, Labels: this.stamp(labels), Data: data.toString('base64') })) as { id?: string; ID?: string };
    return str(secret.id ?? secret.ID);
  }

  async removeSecret(id: string): Promise<void> {
    await ignoreNotFound(this.docker.getSecret(id).remove());
  }

  async listSecrets(): Promise<{ id: string; name: string; labels: Record<string, string> }[]> {
    const secrets = (await this.docker.listSecrets({ filters: this.managedFilter() })) as unknown[];
    return secrets.map((raw) => {
      const s = obj(raw);
      const spec = obj(s.Spec);
      return { id: str(s.ID), name: str(spec.Name), labels: labelsOf(spec.Labels) };
    });
  }

  /** Log lines of a service from whichever node runs its tasks (null when it does not exist). */
  async serviceLogs(id: string, options: { tail: number; follow: boolean }): Promise<Readable | null> {
    const raw = await ignoreNotFound(
      new Promise<Readable>((resolve, reject) => {
        this.docker.modem.dial(
          {
            path: `/services/${encodeURIComponent(id)}/logs?`,
            method: 'GET',
            isStream: true,
            statusCodes: { 200: true, 404: 'no such service', 500: 'server error', 503: 'node is not part of a swarm' },
            options: { stdout: true, stderr: true, tail: options.tail, follow: options.follow },
          },
          (err: unknown, stream?: unknown) => (err ? reject(err) : resolve(stream as Readable)),
        );
      }),
    );
    if (raw === null) return null;
    const lines = new DockerLogLines();
    pipeline(raw, lines).catch(() => undefined);
    return lines;
  }
}
