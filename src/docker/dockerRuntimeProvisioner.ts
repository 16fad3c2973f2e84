import type { Readable } from 'node:stream';
import type { Logger } from '../lib/logger';
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
import { OPENCLAW_PORT, RUNTIME_UID, type RuntimeSettings } from '../runtime/runtimeSettings';
import { HELPER_ROLE } from './fileHelpers';
import type { Installation } from '../domain/installation';
import { infraConflict } from '../lib/infraErrors';
import { engineFault } from './engineFaults';
import { planNetwork, trustedProxies } from './networkPlan';
import { ProxyAttachments } from './proxyAttachments';
import { LABELS, type RuntimeBackend } from './runtimeBackend';
import { changeOf, containerSpecFor, instanceOf, ownerLabels, RUNTIME_ROLE, runtimeNames } from './runtimeContainer';

export type DockerProvisionerSettings = Pick<RuntimeSettings, 'addressing' | 'traefik' | 'router' | 'controlPlaneContainer'>;

/**
 * Engine failures become the port's typed errors (docker/engineFaults.ts: unreachable →
 * unavailable, 404 → not_found, 409 → conflict), with the engine's own words in the message.
 */
function typed<T>(work: Promise<T>): Promise<T> {
  return work.catch((err: unknown) => {
    throw engineFault(err, 'provisioning a runtime');
  });
}

/**
 * The runtime provisioner on one Docker engine: each runtime is a hardened container on its own
 * bridge network (a subnet from our pool, the proxies at fixed addresses) with its data in a
 * named volume; Traefik finds it through its labels. Built on DockerodeRuntimeBackend, the
 * low-level engine adapter.
 */
export class DockerRuntimeProvisioner implements RuntimeProvisioner {
  private readonly proxies: ProxyAttachments;

  private claimed = false;

  constructor(
    private readonly backend: RuntimeBackend,
    private readonly settings: DockerProvisionerSettings,
    private readonly logger: Logger,
    private readonly installation: Installation,
  ) {
    this.proxies = new ProxyAttachments(backend, settings, logger);
  }

  async claim(): Promise<void> {
    if (this.claimed) return;
    const { owner } = await typed(this.backend.claimInstance(this.installation.id));
    if (owner !== this.installation.id) {
      throw infraConflict(
        `Another ClawLoops installation (${owner.slice(0, 8) || 'unknown'}) already runs on this Docker engine under the instance name "${this.installation.instance}". ` +
          'This one would take its runtimes for orphans and remove them, so it does not start. Give this installation its own data directory and leave ' +
          'CLAWLOOPS_INSTANCE unset (it then gets a name of its own), or set a name no other installation on this engine uses.',
      );
    }
    this.claimed = true;
  }

  imageAvailable(image: string): Promise<boolean> {
    return typed(this.backend.imageExists(image));
  }

  pullImage(image: string, onProgress: (progress: PullProgress) => void, signal?: AbortSignal): Promise<void> {
    return typed(this.backend.pullImage(image, onProgress, signal));
  }

  async prepare(owner: RuntimeOwner): Promise<RuntimePlacement> {
    const names = runtimeNames(owner.runtimeId);
    // Independent engine calls go out together: each is a round trip, and they add up.
    const [network, volume] = await typed(
      Promise.all([this.backend.ensureNetwork(names.network, ownerLabels(owner, 'network'), { hostAddress: this.settings.controlPlaneContainer === null }), this.backend.ensureVolume(names.volume, ownerLabels(owner, 'volume'))]),
    );
    await typed(this.proxies.attach(names.network, network.subnet));
    return { ...this.placementOf(network.subnet), freshData: volume.created };
  }

  /**
   * A container that never starts holds the volume while the engine's archive API writes into it
   * (it works on created containers), then goes. Labelled as a file helper, so the start-up sweep
   * removes one a crash left behind.
   */
  async seedData(owner: RuntimeOwner, image: string, dataPath: string, dir: string, entries: FileEntry[]): Promise<boolean> {
    if (!(await typed(this.backend.imageExists(image)))) return false;
    const id = await typed(
      this.backend.createHelperContainer({
        name: `clawloops-seed-${owner.runtimeId.slice(0, 8)}-${Date.now().toString(36)}`,
        image,
        labels: { ...ownerLabels(owner, 'runtime'), [LABELS.role]: HELPER_ROLE },
        user: `${RUNTIME_UID}:${RUNTIME_UID}`,
        entrypoint: ['true'],
        volumeName: runtimeNames(owner.runtimeId).volume,
        volumeMountPath: dataPath,
        memoryBytes: 64 * 1024 ** 2,
        pidsLimit: 16,
      }),
    );
    try {
      await typed(this.backend.putFiles(id, dir, entries));
    } finally {
      await typed(this.backend.removeContainer(id));
    }
    return true;
  }

  private placementOf(subnet: string): RuntimePlacement {
    return { trustedProxies: trustedProxies(planNetwork(subnet), this.settings) };
  }

  create(spec: RuntimeSpec): Promise<string> {
    return typed(this.backend.createContainer(containerSpecFor(spec, this.settings)));
  }

  writeFiles(instanceId: string, dir: string, entries: FileEntry[]): Promise<void> {
    return typed(this.backend.putFiles(instanceId, dir, entries));
  }

  readEntry(instanceId: string, path: string, signal?: AbortSignal): Promise<Readable | null> {
    return typed(this.backend.getArchive(instanceId, path, signal));
  }

  start(instanceId: string): Promise<void> {
    return typed(this.backend.startContainer(instanceId));
  }

  stop(instanceId: string, timeoutSeconds: number): Promise<void> {
    return typed(this.backend.stopContainer(instanceId, timeoutSeconds));
  }

  removeInstance(instanceId: string): Promise<void> {
    return typed(this.backend.removeContainer(instanceId));
  }

  freeze(instanceId: string): Promise<boolean> {
    return typed(this.backend.pauseContainer(instanceId));
  }

  thaw(instanceId: string): Promise<void> {
    return typed(this.backend.unpauseContainer(instanceId));
  }

  async release(runtimeId: string, options: { withData: boolean }): Promise<void> {
    const names = runtimeNames(runtimeId);
    await typed(this.backend.removeNetwork(names.network));
    if (options.withData) await typed(this.backend.removeVolume(names.volume));
  }

  async removeEverythingOf(userId: string): Promise<{ instances: { runtimeId: string; instanceId: string }[]; places: number; volumes: number }> {
    const ours = (labels: Record<string, string>) => labels[LABELS.userId] === userId;
    const instances: { runtimeId: string; instanceId: string }[] = [];
    let places = 0;
    let volumes = 0;
    // Every container of the user: the runtime and whatever holds its volume (file helpers).
    for (const container of (await typed(this.backend.listManagedContainers())).filter((c) => ours(c.labels))) {
      await typed(this.backend.removeContainer(container.id));
      const runtimeId = container.labels[LABELS.runtimeId];
      if (runtimeId && container.labels[LABELS.role] === RUNTIME_ROLE) instances.push({ runtimeId, instanceId: container.id });
    }
    for (const network of (await typed(this.backend.listManagedNetworks())).filter((n) => ours(n.labels))) {
      await typed(this.backend.removeNetwork(network.name));
      places++;
    }
    for (const volume of (await typed(this.backend.listManagedVolumes())).filter((v) => ours(v.labels))) {
      await typed(this.backend.removeVolume(volume.name));
      volumes++;
    }
    return { instances, places, volumes };
  }

  async inspect(instanceId: string): Promise<RuntimeInstance | null> {
    const snapshot = await typed(this.backend.inspectContainer(instanceId));
    return snapshot && snapshot.labels[LABELS.role] === RUNTIME_ROLE ? instanceOf(snapshot, OPENCLAW_PORT) : null;
  }

  async inventory(): Promise<RuntimeInventory> {
    const [containers, networks] = await typed(Promise.all([this.backend.listManagedContainers(), this.backend.listManagedNetworks()]));
    const placements = new Map<string, RuntimePlacement>();
    for (const network of networks) {
      const runtimeId = network.labels[LABELS.runtimeId];
      if (runtimeId && network.subnet) placements.set(runtimeId, this.placementOf(network.subnet));
    }
    return {
      instances: containers.filter((c) => c.labels[LABELS.role] === RUNTIME_ROLE).map((c) => instanceOf(c, OPENCLAW_PORT)),
      placements,
    };
  }

  async sweepPlacements(known: Set<string>): Promise<number> {
    const [containers, networks] = await typed(Promise.all([this.backend.listManagedContainers(), this.backend.listManagedNetworks()]));
    let removed = 0;
    for (const network of networks) {
      const runtimeId = network.labels[LABELS.runtimeId];
      if (runtimeId && known.has(runtimeId)) continue;
      // A network holds no data: one that belongs to no runtime is only in the way.
      if (containers.some((c) => network.name in c.addresses)) continue;
      await typed(this.backend.removeNetwork(network.name));
      this.logger.info({ network: network.name }, 'removed a managed network that belongs to no runtime');
      removed++;
    }
    return removed;
  }

  watch(onChange: (change: RuntimeChange) => void, onEnd: (error: Error | null) => void): Promise<Subscription> {
    return typed(
      this.backend.subscribeEvents((event) => {
        const change = changeOf(event);
        if (change) onChange(change);
      }, onEnd),
    );
  }

  /** Traefik may be re-created by `docker compose up` at any time, which drops its extra networks: put it back. */
  async maintain(): Promise<void> {
    try {
      await this.proxies.ensureAll(await this.backend.listManagedNetworks());
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'checking the proxies on runtime networks failed');
    }
  }

  stats(instanceId: string): Promise<RuntimeStats | null> {
    return typed(this.backend.stats(instanceId));
  }

  logs(instanceId: string, options: { tail: number; follow: boolean }): Promise<Readable | null> {
    return typed(this.backend.logs(instanceId, options));
  }
}
