import { LABELS, type RuntimeBackend } from '../docker/runtimeBackend';
import { AppError } from '../lib/errors';
import type { Logger } from '../lib/logger';
import { ownerLabels, runtimeNames } from '../runtime/containerSpec';
import { OPENCLAW_HOME, RUNTIME_UID, type RuntimeSettings } from '../runtime/runtimeSettings';

/** What the file manager needs to know about a user's runtime; RuntimeManager provides it. */
export interface RuntimeFileTargets {
  /**
   * The user's runtime (its record is created when the user has none, without starting
   * anything) and its container if that is running right now.
   */
  fileTarget(userId: string): { runtimeId: string; username: string; runningContainerId: string | null };
}

/** A container that has the user's volume mounted and accepts exec; release it when done. */
export interface FileHostLease {
  containerId: string;
  runtimeId: string;
  username: string;
  release(): void;
}

interface Helper {
  containerId: string | null;
  ready: Promise<string>;
  leases: number;
  idleTimer: NodeJS.Timeout | null;
  removing: Promise<void> | null;
}

export const HELPER_ROLE = 'files';
const HELPER_MEMORY_BYTES = 256 * 1024 ** 2;
const HELPER_PIDS = 64;
// Idles without busy-waiting; docker-init (HostConfig.Init) reaps the exec'd processes.
const HELPER_IDLE_COMMAND = ['node', '-e', 'setInterval(() => {}, 1 << 30)'];

export const unavailable = (message: string) => new AppError(503, 'FILES_UNAVAILABLE', message);

/**
 * Finds a container to reach a user's files through. A running runtime serves its own files
 * (exec runs beside OpenClaw, as uid 1000). A stopped or never-started runtime gets a helper:
 * a container of the runtime image with the same volume, no network, no capabilities and no
 * restart policy, which idles until released and is removed a minute after its last use.
 * OpenClaw itself is never started for file access.
 */
export class WorkspaceFileHosts {
  private readonly helpers = new Map<string, Helper>();

  constructor(
    private readonly deps: {
      backend: RuntimeBackend;
      targets: RuntimeFileTargets;
      settings: RuntimeSettings;
      logger: Logger;
      idleMs: number;
    },
  ) {}

  async acquire(userId: string): Promise<FileHostLease> {
    const target = this.deps.targets.fileTarget(userId);
    const noop = () => undefined;
    if (target.runningContainerId) return { containerId: target.runningContainerId, runtimeId: target.runtimeId, username: target.username, release: noop };

    let helper = this.helpers.get(target.runtimeId);
    if (helper?.removing) await helper.removing;
    helper = this.helpers.get(target.runtimeId);
    if (!helper) {
      const created: Helper = { containerId: null, leases: 0, idleTimer: null, removing: null, ready: Promise.resolve('') };
      created.ready = this.startHelper(target.runtimeId, target.username, userId).then((id) => (created.containerId = id));
      // A failed start must not be cached: the next request tries again.
      created.ready.catch(() => {
        if (this.helpers.get(target.runtimeId) === created) this.helpers.delete(target.runtimeId);
      });
      this.helpers.set(target.runtimeId, created);
      helper = created;
    }
    const current = helper;
    current.leases++;
    if (current.idleTimer) clearTimeout(current.idleTimer);
    current.idleTimer = null;
    let containerId: string;
    try {
      containerId = await current.ready;
    } catch (err) {
      current.leases--;
      throw err;
    }
    let released = false;
    return {
      containerId,
      runtimeId: target.runtimeId,
      username: target.username,
      release: () => {
        if (released) return;
        released = true;
        current.leases--;
        if (current.leases === 0 && this.helpers.get(target.runtimeId) === current) {
          current.idleTimer = setTimeout(() => void this.removeForRuntime(target.runtimeId), this.deps.idleMs);
          current.idleTimer.unref();
        }
      },
    };
  }

  /** Removes a runtime's helper (idle, or before its volume is purged). */
  async removeForRuntime(runtimeId: string): Promise<void> {
    const helper = this.helpers.get(runtimeId);
    if (!helper) {
      await this.removeLabelled((labels) => labels[LABELS.runtimeId] === runtimeId);
      return;
    }
    if (helper.removing) return helper.removing;
    if (helper.idleTimer) clearTimeout(helper.idleTimer);
    helper.removing = (async () => {
      try {
        const id = await helper.ready.catch(() => null);
        if (id) await this.deps.backend.removeContainer(id);
      } catch (err) {
        this.deps.logger.warn({ runtimeId, err: (err as Error).message }, 'removing a file helper container failed');
      } finally {
        if (this.helpers.get(runtimeId) === helper) this.helpers.delete(runtimeId);
      }
    })();
    return helper.removing;
  }

  /** Start-up and shutdown: helpers are disposable, none survives the process that made it. */
  async removeAll(): Promise<number> {
    for (const helper of this.helpers.values()) if (helper.idleTimer) clearTimeout(helper.idleTimer);
    this.helpers.clear();
    return this.removeLabelled(() => true);
  }

  private async removeLabelled(match: (labels: Record<string, string>) => boolean): Promise<number> {
    const stale = (await this.deps.backend.listManagedContainers()).filter((c) => c.labels[LABELS.role] === HELPER_ROLE && match(c.labels));
    await Promise.all(stale.map((c) => this.deps.backend.removeContainer(c.id)));
    return stale.length;
  }

  private async startHelper(runtimeId: string, username: string, userId: string): Promise<string> {
    const { backend, settings } = this.deps;
    if (!(await backend.imageExists(settings.image))) {
      throw unavailable(`Files cannot be reached while the runtime is stopped: the runtime image ${settings.image} is not on this host yet. Start the runtime once to fetch it.`);
    }
    const identity = { runtimeId, userId, username };
    const names = runtimeNames(runtimeId);
    await backend.ensureVolume(names.volume, ownerLabels(identity, 'volume'));
    const spec = {
      name: `clawloops-files-${username}-${runtimeId.slice(0, 8)}`,
      image: settings.image,
      labels: { ...ownerLabels(identity, 'runtime'), [LABELS.role]: HELPER_ROLE },
      user: `${RUNTIME_UID}:${RUNTIME_UID}`,
      entrypoint: HELPER_IDLE_COMMAND,
      volumeName: names.volume,
      volumeMountPath: OPENCLAW_HOME,
      memoryBytes: HELPER_MEMORY_BYTES,
      pidsLimit: HELPER_PIDS,
    };
    let containerId: string;
    try {
      containerId = await backend.createHelperContainer(spec);
    } catch (err) {
      // A helper left behind by a crashed control plane still holds the name.
      if (!/already in use|Conflict/i.test((err as Error).message)) throw err;
      await this.removeLabelled((labels) => labels[LABELS.runtimeId] === runtimeId);
      containerId = await backend.createHelperContainer(spec);
    }
    try {
      // A fresh volume's root belongs to root when the image lacks the folder: give it to uid 1000,
      // exactly as a runtime start does.
      await backend.putFiles(containerId, '/home/node', [{ path: '.openclaw', type: 'directory', mode: 0o700, uid: RUNTIME_UID, gid: RUNTIME_UID }]);
      await backend.startContainer(containerId);
    } catch (err) {
      await backend.removeContainer(containerId).catch(() => undefined);
      throw err;
    }
    this.deps.logger.debug({ runtimeId, username }, 'file helper container started');
    return containerId;
  }
}
