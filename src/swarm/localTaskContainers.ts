import type { TaskSnapshot } from './swarmEngine';

/** How long one listing of the swarm's tasks answers for: about a sampling round of the runtime figures. */
const DEFAULT_MAX_AGE_MS = 2_000;

/**
 * Which service's task runs on this node, and in which container, from one listing of every task
 * shared by all the callers of a short while. The figures of every running runtime are sampled
 * every few seconds through this node's engine, and a listing per runtime per sample was most of
 * what the swarm backend cost at rest beyond the Docker backend (bench/swarm.ts). A task that
 * started since the last listing is missed for at most `maxAgeMs`; one that moved leaves a
 * container id the engine no longer knows, which its callers already treat as "not here".
 */
export class LocalTaskContainers {
  private cached: { at: number; containers: Promise<Map<string, string>> } | null = null;

  constructor(
    private readonly listTasks: () => Promise<TaskSnapshot[]>,
    private readonly thisNode: () => Promise<string>,
    private readonly now: () => number = Date.now,
    private readonly maxAgeMs = DEFAULT_MAX_AGE_MS,
  ) {}

  async containerOf(serviceId: string): Promise<string | null> {
    if (!this.cached || this.now() - this.cached.at > this.maxAgeMs) {
      const containers = this.read();
      const entry = { at: this.now(), containers };
      this.cached = entry;
      // A failed listing is not kept: the next caller asks again.
      containers.catch(() => {
        if (this.cached === entry) this.cached = null;
      });
    }
    return (await this.cached.containers).get(serviceId) ?? null;
  }

  private async read(): Promise<Map<string, string>> {
    const [here, tasks] = await Promise.all([this.thisNode(), this.listTasks()]);
    const containers = new Map<string, string>();
    for (const task of tasks) if (task.state === 'running' && task.nodeId === here && task.containerId) containers.set(task.serviceId, task.containerId);
    return containers;
  }
}
