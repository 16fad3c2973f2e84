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
  /** Memory set aside for the runtimes pinned there (running or not), and for those on shared storage running there. */
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
    private readonly settings: {
      sharedVolumeOptions: Record<string, string> | null;
      memoryReservationShare: number;
      /** The configured runtime memory: what a pinned runtime without a service yet will ask for. */
      runtimeMemoryBytes: () => number;
    },
  ) {}

  async chooseNode(volumeOnThisNode: boolean, thisNode: string): Promise<string> {
    if (this.settings.sharedVolumeOptions) return ANY_NODE;
    if (volumeOnThisNode) return thisNode;
    const candidates = (await this.loads()).filter((n) => n.state === 'ready' && n.availability === 'active');
    const best = candidates.sort((a, b) => b.memoryBytes - b.reservedBytes - (a.memoryBytes - a.reservedBytes) || a.runtimes - b.runtimes || a.hostname.localeCompare(b.hostname))[0];
    if (!best) throw infraUnavailable('no node of the swarm is ready and active: a new runtime has nowhere to go');
    return best.id;
  }

  /**
   * Every node with what our runtimes hold of it. A runtime pinned to a node counts there whether
   * it runs or not (it will want its memory when it starts): its reservation is its service's, or,
   * before it has one, what the configured runtime memory reserves.
   */
  async loads(): Promise<NodeLoad[]> {
    const [nodes, services, tasks, overlays] = await Promise.all([this.engine.listNodes(), this.engine.listServices(), this.engine.listTasks(), this.engine.listOverlays()]);
    const loads = new Map<string, NodeLoad>(
      nodes.map((n) => [n.id, { id: n.id, hostname: n.hostname, role: n.role, state: n.state, availability: n.availability, memoryBytes: n.memoryBytes, reservedBytes: 0, runtimes: 0, running: 0 }]),
    );
    const share = this.settings.memoryReservationShare;
    const runtimeServices = services.filter((s) => s.labels[LABELS.role] === RUNTIME_ROLE);
    for (const overlay of overlays) {
      const load = loads.get(overlay.labels[NODE_LABEL] ?? '');
      if (!load) continue;
      const service = runtimeServices.find((s) => s.labels[LABELS.runtimeId] === overlay.labels[LABELS.runtimeId]);
      load.runtimes++;
      load.reservedBytes += Math.floor((service?.memoryLimitBytes ?? this.settings.runtimeMemoryBytes()) * share);
    }
    for (const service of runtimeServices) {
      // Running, or started and waiting for its first health check.
      const runningTask = tasks.find((t) => t.serviceId === service.id && (t.state === 'running' || t.state === 'starting'));
      const load = runningTask?.nodeId ? loads.get(runningTask.nodeId) : undefined;
      if (!load) continue;
      load.running++;
      // A runtime on shared storage runs where the swarm put it, and holds memory only there.
      if (service.labels[NODE_LABEL] === ANY_NODE) load.reservedBytes += Math.floor(service.memoryLimitBytes * share);
    }
    return [...loads.values()];
  }
}
