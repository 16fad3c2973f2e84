import { LABELS } from '../docker/runtimeBackend';
import { RUNTIME_ROLE } from '../docker/runtimeContainer';
import { infraUnavailable } from '../lib/infraErrors';
import { ANY_NODE, NODE_LABEL } from './runtimeService';
import type { NodeSnapshot, SwarmEngine } from './swarmEngine';

/** A node as the admin console shows it: its state and what our runtimes hold of it. */
export interface NodeLoad {
  id: string;
  hostname: string;
  role: NodeSnapshot['role'];
  state: NodeSnapshot['state'];
  availability: NodeSnapshot['availability'];
  memoryBytes: number;
  /** Memory the scheduler sets aside for our runtimes that run or are meant to run there. */
  reservedBytes: number;
  /** Runtimes whose data is on this node (pinned to it). */
  runtimes: number;
  /** Runtimes running there now. */
  running: number;
}

/**
 * Where a new runtime goes. With node-local volumes a runtime is pinned for good to the node it
 * is first placed on (its data is there): a volume a single-host installation left on this node
 * keeps its runtime here; a new one goes to the ready, active node with the most memory not set
 * aside for runtimes. With shared storage nothing is pinned.
 */
export class Placement {
  constructor(
    private readonly engine: SwarmEngine,
    private readonly settings: { sharedVolumeOptions: Record<string, string> | null; memoryReservationShare: number },
  ) {}

  async chooseNode(volumeOnThisNode: boolean, thisNode: string): Promise<string> {
    if (this.settings.sharedVolumeOptions) return ANY_NODE;
    if (volumeOnThisNode) return thisNode;
    const candidates = (await this.loads()).filter((n) => n.state === 'ready' && n.availability === 'active');
    const best = candidates.sort((a, b) => b.memoryBytes - b.reservedBytes - (a.memoryBytes - a.reservedBytes) || a.runtimes - b.runtimes || a.hostname.localeCompare(b.hostname))[0];
    if (!best) throw infraUnavailable('no node of the swarm is ready and active: a new runtime has nowhere to go');
    return best.id;
  }

  async loads(): Promise<NodeLoad[]> {
    const [nodes, services, tasks] = await Promise.all([this.engine.listNodes(), this.engine.listServices(), this.engine.listTasks()]);
    const loads = new Map<string, NodeLoad>(
      nodes.map((n) => [n.id, { id: n.id, hostname: n.hostname, role: n.role, state: n.state, availability: n.availability, memoryBytes: n.memoryBytes, reservedBytes: 0, runtimes: 0, running: 0 }]),
    );
    for (const service of services.filter((s) => s.labels[LABELS.role] === RUNTIME_ROLE)) {
      const pinned = service.labels[NODE_LABEL];
      const runningTask = tasks.find((t) => t.serviceId === service.id && t.state === 'running');
      const where = pinned && pinned !== ANY_NODE ? pinned : (runningTask?.nodeId ?? null);
      const load = where ? loads.get(where) : undefined;
      if (!load) continue;
      if (pinned && pinned !== ANY_NODE) load.runtimes++;
      if (service.replicas > 0) load.reservedBytes += Math.floor(service.memoryLimitBytes * this.settings.memoryReservationShare);
      if (runningTask) load.running++;
    }
    return [...loads.values()];
  }
}
