import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Installation } from '../domain/installation';
import { engineFault } from '../docker/engineFaults';
import { planNetwork, trustedProxies } from '../docker/networkPlan';
import { ProxyAttachments } from '../docker/proxyAttachments';
import { LABELS, type RuntimeBackend } from '../docker/runtimeBackend';
import { ownerLabels, ownerOf, RUNTIME_ROLE, runtimeNames } from '../docker/runtimeContainer';
import { infraConflict, infraGone, infraNotFound, infraUnavailable } from '../lib/infraErrors';
import type { Logger } from '../lib/logger';
import { fileEntriesTar } from '../runtime/fileEntriesTar';
import type {
  FileEntry,
  PullProgress,
  RuntimeChange,
  RuntimeInstance,
  RuntimeInventory,
  RuntimeOwner,
  RuntimePlacement,
  RuntimeProvisioner,
  RuntimeSpec,
  RuntimeStats,
  Subscription,
} from '../runtime/provisioner';
import { OPENCLAW_HOME, OPENCLAW_PORT } from '../runtime/runtimeSettings';
import { Placement, type NodeLoad } from './placement';
import { ANY_NODE, changeBetween, digestOf, instanceOfService, isRuntimeService, isSettled, NODE_LABEL, serviceSpecFor, taskIsUp, type NodeVerdict, type ServiceDigest, type ServiceSettings } from './runtimeService';
import { SwarmFigures, type NodeStatsSource } from './swarmFigures';
import type { SwarmFileAgents } from './swarmFileAgents';
import type { OverlayInfo, ServiceSnapshot, SwarmEngine, TaskSnapshot } from './swarmEngine';

interface NodeTrouble {
  /** Not answering the managers: what it last said of its tasks no longer holds. */
  down: boolean;
  reason: string;
}

export interface SwarmProvisionerSettings extends ServiceSettings {
  /** The configured runtime memory (placement counts what a runtime not created yet will reserve). */
  runtimeMemoryBytes: () => number;
  controlPlaneContainer: string | null;
  /** How often the swarm's tasks are read while a runtime is on its way somewhere (the swarm has no task events). */
  pollMs: number;
  /**
   * How often they are read while every runtime is where it is heading: then only a crash (or a
   * change nobody announced) can happen, and service and node events wake the watch at once.
   */
  idlePollMs: number;
}

function typed<T>(work: Promise<T>, what = 'provisioning a runtime on the swarm'): Promise<T> {
  return work.catch((err: unknown) => {
    throw engineFault(err, what);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A pause that a nudge ends early; a nudge while nobody waits ends the next pause at once. */
class Wakeup {
  private pending = false;
  private wake: (() => void) | null = null;

  nudge(): void {
    this.pending = true;
    this.wake?.();
  }

  after(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wake = null;
        this.pending = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (this.pending) return done();
      this.wake = done;
    });
  }
}


/**
 * The runtime provisioner on a Docker Swarm: each runtime is a one-replica service (replicas 0
 * while stopped) on its own attachable internal overlay, with its data in a volume on the node
 * it is pinned to (or on shared storage, then anywhere). The control plane and Traefik run as
 * plain containers on this manager and join every runtime's overlay at their fixed addresses:
 * the engine cannot attach a running service task to a new network without restarting it.
 *
 * What the swarm's API cannot do from a manager is done by a service on the node: files into
 * and out of a runtime's data by a file agent beside the volume (swarmFileAgents.ts), live
 * figures (`stats`) by the node-stats service on every node (swarmNodeStats.ts). Pausing
 * (`freeze`) is per-engine: it works for tasks on this node only.
 */
export class SwarmRuntimeProvisioner implements RuntimeProvisioner {
  private readonly proxies: ProxyAttachments;
  private readonly placement: Placement;
  private readonly figures: SwarmFigures;
  private claimed = false;
  private localNodeId: string | null = null;

  constructor(
    private readonly engine: SwarmEngine,
    private readonly local: RuntimeBackend,
    private readonly fileAgents: SwarmFileAgents,
    private readonly settings: SwarmProvisionerSettings & { router: 'builtin' | 'traefik' },
    private readonly logger: Logger,
    private readonly installation: Installation,
    nodeStats: NodeStatsSource,
  ) {
    this.proxies = new ProxyAttachments(local, { controlPlaneContainer: settings.controlPlaneContainer, router: settings.router }, logger);
    this.placement = new Placement(engine, settings);
    this.figures = new SwarmFigures({
      listTasks: () => typed(this.engine.listTasks()),
      isRuntime: (task) => task.labels[LABELS.role] === RUNTIME_ROLE && this.engine.owns(task.labels),
      source: nodeStats,
    });
  }

  async claim(): Promise<void> {
    if (this.claimed) return;
    const node = await typed(this.engine.localNode());
    if (!node.manager) {
      throw infraUnavailable(
        `CLAWLOOPS_RUNTIME_BACKEND=swarm needs this engine to be a swarm manager, and it is ${node.state || 'not in a swarm'}. ` +
          'Run `docker swarm init` on this machine (or run the control plane on a manager node), or leave CLAWLOOPS_RUNTIME_BACKEND unset for one machine.',
      );
    }
    if (!this.settings.controlPlaneContainer) {
      throw infraUnavailable('On a swarm the control plane must run in a container on a manager node (it joins every runtime network): set CLAWLOOPS_CONTROL_PLANE_CONTAINER=self.');
    }
    this.localNodeId = node.nodeId;
    const { owner } = await typed(this.local.claimInstance(this.installation.id));
    if (owner !== this.installation.id) {
      throw infraConflict(
        `Another ClawLoops installation (${owner.slice(0, 8) || 'unknown'}) already runs on this swarm manager under the instance name "${this.installation.instance}". ` +
          'Give this installation its own data directory and leave CLAWLOOPS_INSTANCE unset, or set a name no other installation uses.',
      );
    }
    this.claimed = true;
  }

  imageAvailable(image: string): Promise<boolean> {
    return typed(this.local.imageExists(image));
  }

  pullImage(image: string, onProgress: (progress: PullProgress) => void, signal?: AbortSignal): Promise<void> {
    return typed(this.local.pullImage(image, onProgress, signal));
  }

  /** The node this engine is (after claim). */
  async thisNode(): Promise<string> {
    if (!this.localNodeId) this.localNodeId = (await typed(this.engine.localNode())).nodeId;
    return this.localNodeId;
  }

  /**
   * The runtime's overlay, pinned to its node at the first placement: where its volume already is
   * (this node, for data a single-host installation left), else the node with the most memory
   * free; with shared storage, no node. The proxies join it at their fixed addresses.
   */
  async prepare(owner: RuntimeOwner): Promise<RuntimePlacement> {
    const overlay = await this.place(owner);
    // A start prepares first: the proxies are put back on an overlay they lost meanwhile.
    await typed(this.proxies.attach(overlay.name, overlay.subnet));
    return { trustedProxies: trustedProxies(planNetwork(overlay.subnet), this.settings) };
  }

  /** The runtime's overlay and the node it is pinned to (ANY_NODE with shared storage). */
  async place(owner: RuntimeOwner): Promise<{ name: string; subnet: string; node: string }> {
    const names = runtimeNames(owner.runtimeId);
    let overlay = await typed(this.engine.inspectOverlay(names.network));
    if (!overlay) overlay = await this.firstPlacement(owner);
    return { name: names.network, subnet: overlay.subnet, node: overlay.labels[NODE_LABEL] ?? ANY_NODE };
  }

  /**
   * Pins a runtime to another node: its overlay (which records the node) is made again. Nothing
   * of the runtime may use it meanwhile (SwarmRuntimeNodes.move removes its service and agents).
   */
  async repin(owner: RuntimeOwner, node: string): Promise<void> {
    const names = runtimeNames(owner.runtimeId);
    const old = await typed(this.engine.inspectOverlay(names.network));
    await typed(this.engine.removeOverlay(names.network));
    // This engine forgets a removed overlay a moment after the swarm has: until then its name
    // still finds the old one, which nothing can attach to any more.
    const deadline = Date.now() + 30_000;
    while (old && (await typed(this.engine.inspectOverlay(names.network)))?.id === old.id && Date.now() < deadline) await sleep(250);
    const overlay = await typed(this.engine.ensureOverlay(names.network, { ...ownerLabels(owner, 'network'), [NODE_LABEL]: node }));
    if (overlay.labels[NODE_LABEL] !== node) throw infraConflict(`the runtime's network ${names.network} was re-created elsewhere meanwhile; try the move again`);
    // By its id: for a moment this engine still knows the name as the overlay just removed.
    for (let attempt = 0; ; attempt++) {
      try {
        await typed(this.proxies.attach(overlay.id, overlay.subnet));
        break;
      } catch (err) {
        if (attempt >= 20 || !/not found/i.test((err as Error).message)) throw err;
        await sleep(500);
      }
    }
    this.logger.info({ runtimeId: owner.runtimeId, username: owner.username, node }, 'runtime pinned to another node');
  }

  /**
   * First placements take turns: each reads what the nodes hold, which includes the runtimes
   * placed just before it (new accounts are prepared a few at a time).
   */
  private firstPlacement(owner: RuntimeOwner): Promise<OverlayInfo> {
    const names = runtimeNames(owner.runtimeId);
    const placing = this.placing.then(async () => {
      const existing = await typed(this.engine.inspectOverlay(names.network));
      if (existing) return existing;
      const node = await typed(this.placement.chooseNode(await this.local.volumeExists(names.volume), await this.thisNode()));
      const overlay = await typed(this.engine.ensureOverlay(names.network, { ...ownerLabels(owner, 'network'), [NODE_LABEL]: node }));
      await typed(this.proxies.attach(names.network, overlay.subnet));
      this.logger.info({ runtimeId: owner.runtimeId, username: owner.username, node }, 'runtime placed');
      return overlay;
    });
    this.placing = placing.then(
      () => undefined,
      () => undefined,
    );
    return placing;
  }

  private placing: Promise<void> = Promise.resolve();

  /** The node a runtime is pinned to, null before its first placement. */
  async pinnedNode(runtimeId: string): Promise<string | null> {
    const overlay = await typed(this.engine.inspectOverlay(runtimeNames(runtimeId).network));
    return overlay ? (overlay.labels[NODE_LABEL] ?? ANY_NODE) : null;
  }

  /** Seeding is an optimisation the swarm skips: the first start writes the configuration. */
  async seedData(): Promise<boolean> {
    return false;
  }

  async create(spec: RuntimeSpec): Promise<string> {
    const { node } = await this.place(spec.owner);
    const command = await this.imageCommand(spec.image, spec.command);
    return typed(this.engine.createService(serviceSpecFor(spec, command, node, this.settings, (l) => this.engine.stamp(l))));
  }

  /**
   * What the service runs: the image's entrypoint and command as the engine would (a service's
   * command replaces the entrypoint, and it must, to run under setpriv).
   */
  private async imageCommand(image: string, command: string[]): Promise<string[]> {
    const info = await typed(this.engine.docker.getImage(image).inspect());
    const entrypoint = info.Config.Entrypoint ?? [];
    const cmd = command.length > 0 ? command : (info.Config.Cmd ?? []);
    const all = [...(Array.isArray(entrypoint) ? entrypoint : [entrypoint]), ...cmd];
    if (all.length === 0) throw infraNotFound(`the image ${image} names no command to run`);
    return all;
  }

  private async ownerOfInstance(instanceId: string): Promise<RuntimeOwner> {
    const service = await typed(this.engine.inspectService(instanceId));
    if (!service || !isRuntimeService(service)) throw infraGone(`the runtime service ${instanceId.slice(0, 12)} is gone`);
    return ownerOf(service.labels);
  }

  async writeFiles(instanceId: string, dir: string, entries: FileEntry[]): Promise<void> {
    const owner = await this.ownerOfInstance(instanceId);
    const archive = await fileEntriesTar(intoVolume(dir, entries));
    await this.fileAgents.withAgent(owner, (agent) => agent.writeArchive(OPENCLAW_HOME, archive));
  }

  async readEntry(instanceId: string, path: string, signal?: AbortSignal): Promise<Readable | null> {
    const owner = await this.ownerOfInstance(instanceId);
    return this.fileAgents.readOnce(owner, path, signal);
  }

  async start(instanceId: string): Promise<void> {
    await typed(
      this.engine.updateService(instanceId, (spec) => {
        spec.Mode = { Replicated: { Replicas: 1 } };
        return spec;
      }),
    );
  }

  /** Replicas 0 with the stop's own grace period, then waits until the task has ended. */
  async stop(instanceId: string, timeoutSeconds: number): Promise<void> {
    const service = await typed(this.engine.inspectService(instanceId));
    if (!service) return;
    if (service.replicas !== 0) {
      await typed(
        this.engine.updateService(instanceId, (spec) => {
          spec.Mode = { Replicated: { Replicas: 0 } };
          const container = spec.TaskTemplate && 'ContainerSpec' in spec.TaskTemplate ? spec.TaskTemplate.ContainerSpec : undefined;
          if (container) (container as { StopGracePeriod?: number }).StopGracePeriod = timeoutSeconds * 1e9;
          return spec;
        }),
      );
    }
    await this.waitForTasks(instanceId, (tasks) => !tasks.some(taskIsUp), (timeoutSeconds + 20) * 1000);
  }

  private async waitForTasks(serviceId: string, done: (tasks: TaskSnapshot[]) => boolean, waitMs: number): Promise<void> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      const tasks = await typed(this.engine.listTasks([serviceId]));
      if (done(tasks)) return;
      if (Date.now() > deadline) {
        this.logger.warn({ serviceId: serviceId.slice(0, 12), waitedMs: waitMs }, 'the swarm has not ended a runtime task in time; going on');
        return;
      }
      await sleep(250);
    }
  }

  /** The task's container, when it runs on this node (per-engine calls reach only those). */
  private async localContainer(instanceId: string): Promise<string | null> {
    const here = await this.thisNode();
    const running = (await typed(this.engine.listTasks([instanceId]))).find((t) => t.state === 'running' && t.nodeId === here);
    return running?.containerId ?? null;
  }

  async freeze(instanceId: string): Promise<boolean> {
    const container = await this.localContainer(instanceId);
    return container ? typed(this.local.pauseContainer(container)) : false;
  }

  async thaw(instanceId: string): Promise<void> {
    const container = await this.localContainer(instanceId);
    if (container) await typed(this.local.unpauseContainer(container));
  }

  /** Removes the service and waits until its task's container has gone (it holds the volume and the overlay). */
  async removeInstance(instanceId: string): Promise<void> {
    await typed(this.engine.removeService(instanceId));
    await this.waitForContainersGone(instanceId);
  }

  private async waitForContainersGone(serviceId: string): Promise<void> {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const containers = await typed(this.engine.docker.listContainers({ all: true, filters: JSON.stringify({ label: [`com.docker.swarm.service.id=${serviceId}`] }) }));
      if (containers.length === 0) return;
      await sleep(250);
    }
  }

  async release(runtimeId: string, options: { withData: boolean }): Promise<void> {
    const names = runtimeNames(runtimeId);
    const node = await this.pinnedNode(runtimeId);
    await this.fileAgents.removeForRuntime(runtimeId);
    if (options.withData) await this.removeData(runtimeId, node);
    await typed(this.engine.removeOverlay(names.network));
  }

  /**
   * A volume on this node is removed; one on another node cannot be (volumes are per-engine), so
   * a one-off task on that node empties it, and the empty volume stays listed there.
   */
  private async removeData(runtimeId: string, node: string | null): Promise<void> {
    const volume = runtimeNames(runtimeId).volume;
    if (await typed(this.local.volumeExists(volume))) await this.removeLocalVolume(volume);
    if (node !== null && node !== ANY_NODE && node !== (await this.thisNode())) await this.fileAgents.wipe(runtimeId, node);
  }

  /** Removes the runtime's data from one node (the old copy of a moved runtime). */
  async removeDataOn(runtimeId: string, node: string): Promise<void> {
    if (node === (await this.thisNode())) await this.removeLocalVolume(runtimeNames(runtimeId).volume);
    else await this.fileAgents.wipe(runtimeId, node);
  }

  private async removeLocalVolume(volume: string): Promise<void> {
    // A removed task's container may still hold it for a moment.
    for (let attempt = 0; ; attempt++) {
      try {
        await typed(this.local.removeVolume(volume));
        return;
      } catch (err) {
        if (attempt >= 40) throw err;
        await sleep(250);
      }
    }
  }

  async removeEverythingOf(userId: string): Promise<{ instances: { runtimeId: string; instanceId: string }[]; places: number; volumes: number }> {
    const ours = (labels: Record<string, string>) => labels[LABELS.userId] === userId;
    const instances: { runtimeId: string; instanceId: string }[] = [];
    const runtimeIds = new Set<string>();
    for (const service of (await typed(this.engine.listServices())).filter((s) => ours(s.labels))) {
      await this.removeInstance(service.id);
      const runtimeId = service.labels[LABELS.runtimeId];
      if (!runtimeId) continue;
      runtimeIds.add(runtimeId);
      if (service.labels[LABELS.role] === RUNTIME_ROLE) instances.push({ runtimeId, instanceId: service.id });
    }
    let places = 0;
    let volumes = 0;
    for (const overlay of (await typed(this.engine.listOverlays())).filter((n) => ours(n.labels))) {
      const runtimeId = overlay.labels[LABELS.runtimeId];
      if (runtimeId) {
        await this.removeData(runtimeId, overlay.labels[NODE_LABEL] ?? null);
        runtimeIds.delete(runtimeId);
        volumes++;
      }
      await typed(this.engine.removeOverlay(overlay.name));
      places++;
    }
    for (const volume of (await typed(this.local.listManagedVolumes())).filter((v) => ours(v.labels))) {
      await this.removeLocalVolume(volume.name);
      volumes++;
    }
    return { instances, places, volumes };
  }

  async inspect(instanceId: string): Promise<RuntimeInstance | null> {
    const service = await typed(this.engine.inspectService(instanceId));
    if (!service || !isRuntimeService(service)) return null;
    const [tasks, troubles] = await Promise.all([typed(this.engine.listTasks([service.id])), this.nodeTroubles()]);
    return instanceOfService(service, tasks, OPENCLAW_PORT, this.verdictFor(service, tasks, troubles));
  }

  /**
   * Why a runtime cannot run, from the state of its node (the swarm itself says only "no suitable
   * node"), and whether its task is lost with a node that is down.
   */
  private verdictFor(service: ServiceSnapshot, tasks: TaskSnapshot[], nodes: Map<string, NodeTrouble>): NodeVerdict {
    const latest = tasks[0];
    if (latest && taskIsUp(latest) && latest.nodeId) {
      const trouble = nodes.get(latest.nodeId);
      if (trouble?.down) return { reason: trouble.reason, lost: true };
    }
    const node = service.labels[NODE_LABEL];
    if (!node || node === ANY_NODE || service.replicas === 0 || latest?.state === 'running') return { reason: null, lost: false };
    return { reason: nodes.get(node)?.reason ?? null, lost: false };
  }

  /** For every node that cannot take a runtime now, the reason in our words. */
  private async nodeTroubles(): Promise<Map<string, NodeTrouble>> {
    const troubles = new Map<string, NodeTrouble>();
    for (const node of await typed(this.engine.listNodes())) {
      if (node.state !== 'ready') {
        troubles.set(node.id, {
          down: true,
          reason: `Its node ${node.hostname} is ${node.state}${node.message ? ` (${node.message})` : ''}: the runtime's data is there, so it cannot run until that node is back or an administrator moves it.`,
        });
      } else if (node.availability !== 'active') {
        troubles.set(node.id, { down: false, reason: `Its node ${node.hostname} is set to ${node.availability}: the runtime's data is there, so it cannot run until the node is active again or an administrator moves it.` });
      }
    }
    return troubles;
  }

  async inventory(): Promise<RuntimeInventory> {
    const [services, tasks, overlays, troubles] = await Promise.all([typed(this.engine.listServices()), typed(this.engine.listTasks()), typed(this.engine.listOverlays()), this.nodeTroubles()]);
    const placements = new Map<string, RuntimePlacement>();
    for (const overlay of overlays) {
      const runtimeId = overlay.labels[LABELS.runtimeId];
      if (runtimeId && overlay.subnet) placements.set(runtimeId, { trustedProxies: trustedProxies(planNetwork(overlay.subnet), this.settings) });
    }
    return {
      instances: services.filter(isRuntimeService).map((s) => {
        const own = tasks.filter((t) => t.serviceId === s.id);
        return instanceOfService(s, own, OPENCLAW_PORT, this.verdictFor(s, own, troubles));
      }),
      placements,
    };
  }

  async sweepPlacements(known: Set<string>): Promise<number> {
    const [services, overlays] = await Promise.all([typed(this.engine.listServices()), typed(this.engine.listOverlays())]);
    let removed = 0;
    for (const overlay of overlays) {
      const runtimeId = overlay.labels[LABELS.runtimeId];
      if (runtimeId && known.has(runtimeId)) continue;
      if (services.some((s) => s.labels[LABELS.runtimeId] === runtimeId)) continue;
      await typed(this.engine.removeOverlay(overlay.name));
      this.logger.info({ network: overlay.name }, 'removed a runtime overlay that belongs to no runtime');
      removed++;
    }
    return removed;
  }

  /**
   * The swarm reports no task events, so its tasks are read and compared with the last look: a
   * runtime whose task started, ended, was rescheduled or lost its node is a change. They are read
   * every `pollMs` while some runtime is on its way somewhere, every `idlePollMs` once all have
   * settled, and at once on any service or node event (a start, a stop, a node drained or down):
   * fewer reads at rest, and a drained or stopped node is seen sooner (bench/swarm.ts, swarmCluster).
   */
  async watch(onChange: (change: RuntimeChange) => void, onEnd: (error: Error | null) => void): Promise<Subscription> {
    const seen = new Map<string, { runtimeId: string; digest: ServiceDigest }>();
    let closed = false;
    /** Whether every runtime was where it is heading at the last look. */
    const look = async (report: boolean): Promise<boolean> => {
      const [services, tasks, troubles] = await Promise.all([this.engine.listServices(), this.engine.listTasks(), this.nodeTroubles()]);
      const present = new Set<string>();
      let settled = true;
      for (const service of services.filter(isRuntimeService)) {
        const own = tasks.filter((t) => t.serviceId === service.id);
        const runtimeId = service.labels[LABELS.runtimeId] ?? '';
        const verdict = this.verdictFor(service, own, troubles);
        const digest = digestOf(service, own, verdict);
        present.add(service.id);
        if (!isSettled(service, own, verdict)) settled = false;
        const change = changeBetween(runtimeId, service.id, seen.get(service.id)?.digest, digest, own[0]?.exitCode ?? null);
        seen.set(service.id, { runtimeId, digest });
        if (change && report) onChange(change);
      }
      for (const [serviceId, { runtimeId, digest }] of seen) {
        if (present.has(serviceId)) continue;
        seen.delete(serviceId);
        const change = changeBetween(runtimeId, serviceId, digest, null, null);
        if (change) onChange(change);
      }
      return settled;
    };
    const wakeUp = new Wakeup();
    // Without events the watch cannot rest: it reads at the short interval only.
    let events: { close(): void } | null = null;
    const subscribe = async (): Promise<void> => {
      try {
        events = await this.engine.subscribeSwarmEvents(
          () => wakeUp.nudge(),
          (err) => {
            events = null;
            if (!closed) this.logger.warn({ err: err?.message ?? 'ended' }, 'the swarm\'s event stream ended; reading its tasks every poll until it is back');
          },
        );
      } catch (err) {
        this.logger.warn({ err: (err as Error).message }, 'subscribing to the swarm\'s events failed; reading its tasks every poll');
      }
    };
    await subscribe();
    // The first look only records: the caller reads the inventory itself once subscribed.
    let settled = await typed(look(false));
    const loop = async (): Promise<void> => {
      while (!closed) {
        await wakeUp.after(settled && events ? this.settings.idlePollMs : this.settings.pollMs);
        if (closed) return;
        if (!events) await subscribe();
        try {
          settled = await look(true);
        } catch (err) {
          closed = true;
          events?.close();
          onEnd(engineFault(err, 'watching the swarm') as Error);
          return;
        }
      }
    };
    void loop();
    return {
      close: () => {
        closed = true;
        events?.close();
        wakeUp.nudge();
      },
    };
  }

  /** Traefik re-created by `docker compose up` lost its runtime overlays: put it back on them. */
  async maintain(): Promise<void> {
    try {
      await this.proxies.ensureAll(await this.engine.listOverlays());
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'checking the proxies on runtime overlays failed');
    }
  }

  /** From the node-stats service on the task's node, this node included: one path for every node. */
  stats(instanceId: string): Promise<RuntimeStats | null> {
    return this.figures.stats(instanceId);
  }

  async logs(instanceId: string, options: { tail: number; follow: boolean }): Promise<Readable | null> {
    return typed(this.engine.serviceLogs(instanceId, options));
  }

  /** Every node with what our runtimes hold of it, for the admin console. */
  nodeLoads(): Promise<NodeLoad[]> {
    return typed(this.placement.loads());
  }
}

/**
 * Entries meant for `dir` (the volume's mount point or a folder above it, as the Docker backend
 * writes them) re-rooted at the volume itself: the file agent sees nothing but the volume. The
 * mount point's own entry is dropped (it exists); anything outside the volume is refused.
 */
export function intoVolume(dir: string, entries: FileEntry[]): FileEntry[] {
  const rebase = (name: string): string | null => {
    const absolute = path.posix.join(dir, name);
    if (absolute === OPENCLAW_HOME) return null;
    const relative = path.posix.relative(OPENCLAW_HOME, absolute);
    if (relative.startsWith('..') || path.posix.isAbsolute(relative)) throw new Error(`${absolute} is outside the runtime's volume ${OPENCLAW_HOME}`);
    return relative;
  };
  return entries.flatMap((entry) => {
    const name = rebase(entry.path);
    if (name === null) return [];
    const linkTarget = entry.linkTarget === undefined ? undefined : rebase(entry.linkTarget);
    if (entry.linkTarget !== undefined && !linkTarget) throw new Error(`a hard link to ${entry.linkTarget} cannot be written into the volume`);
    return [{ ...entry, path: name, ...(linkTarget ? { linkTarget } : {}) }];
  });
}
